//! The client certificate as DER bytes, through the C shim (csrc/cert.c) so the broker's X509
//! object is encoded and released by the broker's own libcrypto.

use std::ffi::{c_int, c_void};

use super::broker::Broker;
use super::sys::mosquitto;

extern "C" {
    fn mqttguard_x509_to_der(cert: *mut c_void, der: *mut *mut u8, len: *mut c_int) -> c_int;
    fn mqttguard_der_free(der: *mut u8);
}

/// The client's certificate, or `None` when it has none (only listeners with
/// `require_certificate true` expose it).
///
/// # Safety
/// `client` must be the client of the current callback.
pub(crate) unsafe fn client_certificate_der(
    broker: &Broker,
    client: *const mosquitto,
) -> Option<Vec<u8>> {
    // SAFETY: per the function contract; the broker returns NULL or a new X509 reference.
    let cert = unsafe { broker.client_certificate(client) };
    if cert.is_null() {
        return None;
    }
    let mut der: *mut u8 = std::ptr::null_mut();
    let mut len: c_int = 0;
    // SAFETY: the shim takes ownership of `cert` and always releases it.
    let rc = unsafe { mqttguard_x509_to_der(cert, &mut der, &mut len) };
    if rc != 0 || der.is_null() || len <= 0 {
        return None;
    }
    // SAFETY: the shim returned `len` bytes at `der`, which we copy and then free with it.
    let bytes = unsafe { std::slice::from_raw_parts(der, len as usize) }.to_vec();
    // SAFETY: `der` came from the shim and is freed once.
    unsafe { mqttguard_der_free(der) };
    Some(bytes)
}

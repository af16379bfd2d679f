//! The broker's functions, looked up in the running broker at load time.
//!
//! Looking them up (rather than linking) keeps the library free of undefined symbols, lets the
//! same build load into Mosquitto 2.0 and 2.1, and tells us which of the two we are in.

use std::ffi::{c_char, c_int, c_void, CStr};

use super::sys::{mosquitto, mosquitto_plugin_id_t};

pub(crate) type Callback = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void) -> c_int;

type LogPrintf = unsafe extern "C" fn(c_int, *const c_char, ...);
type ClientStr = unsafe extern "C" fn(*const mosquitto) -> *const c_char;
type SetUsername = unsafe extern "C" fn(*mut mosquitto, *const c_char) -> c_int;
type ClientCertificate = unsafe extern "C" fn(*const mosquitto) -> *mut c_void;
type CallbackRegister = unsafe extern "C" fn(
    *mut mosquitto_plugin_id_t,
    c_int,
    Option<Callback>,
    *const c_void,
    *mut c_void,
) -> c_int;
type CallbackUnregister = unsafe extern "C" fn(
    *mut mosquitto_plugin_id_t,
    c_int,
    Option<Callback>,
    *const c_void,
) -> c_int;
type CompleteBasicAuth = unsafe extern "C" fn(*const c_char, c_int);
type PublishCopy = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    c_int,
    *const c_void,
    c_int,
    bool,
    *mut c_void,
) -> c_int;
type SetInfo =
    unsafe extern "C" fn(*mut mosquitto_plugin_id_t, *const c_char, *const c_char) -> c_int;

/// Which Mosquitto line we are loaded into; it changes what a reload callback may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerVersion {
    V2_0,
    V2_1,
}

/// The broker functions the plugin uses. Copied into each plugin instance.
#[derive(Clone, Copy)]
pub(crate) struct Broker {
    log_printf: LogPrintf,
    client_address: ClientStr,
    client_id: ClientStr,
    client_username: ClientStr,
    set_username: SetUsername,
    client_certificate: ClientCertificate,
    callback_register: CallbackRegister,
    callback_unregister: CallbackUnregister,
    publish_copy: PublishCopy,
    set_info: Option<SetInfo>,
    /// 2.1 only: answers a basic auth that returned MOSQ_ERR_AUTH_DELAYED.
    complete_basic_auth: Option<CompleteBasicAuth>,
    pub(crate) version: BrokerVersion,
}

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no preconditions.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!symbol.is_null()).then_some(symbol)
}

macro_rules! required {
    ($name:literal, $ty:ty) => {
        match lookup($name) {
            // SAFETY: the symbol is the broker's exported function of this name, whose C
            // signature the type alias mirrors (mosquitto_broker.h).
            Some(symbol) => unsafe { std::mem::transmute::<*mut c_void, $ty>(symbol) },
            None => return Err($name),
        }
    };
}

impl Broker {
    /// Looks up every function; fails (naming the missing symbol) outside a Mosquitto 2 broker.
    pub(crate) fn resolve() -> Result<Broker, &'static CStr> {
        let set_info = lookup(c"mosquitto_plugin_set_info")
            // SAFETY: as in `required!`; signature from Mosquitto 2.1's broker.h.
            .map(|symbol| unsafe { std::mem::transmute::<*mut c_void, SetInfo>(symbol) });
        Ok(Broker {
            log_printf: required!(c"mosquitto_log_printf", LogPrintf),
            client_address: required!(c"mosquitto_client_address", ClientStr),
            client_id: required!(c"mosquitto_client_id", ClientStr),
            client_username: required!(c"mosquitto_client_username", ClientStr),
            set_username: required!(c"mosquitto_set_username", SetUsername),
            client_certificate: required!(c"mosquitto_client_certificate", ClientCertificate),
            callback_register: required!(c"mosquitto_callback_register", CallbackRegister),
            callback_unregister: required!(c"mosquitto_callback_unregister", CallbackUnregister),
            publish_copy: required!(c"mosquitto_broker_publish_copy", PublishCopy),
            version: if set_info.is_some() {
                BrokerVersion::V2_1
            } else {
                BrokerVersion::V2_0
            },
            set_info,
            complete_basic_auth: lookup(c"mosquitto_complete_basic_auth")
                // SAFETY: as in `required!`; signature from Mosquitto 2.1's broker.h.
                .map(|s| unsafe { std::mem::transmute::<*mut c_void, CompleteBasicAuth>(s) }),
        })
    }

    /// Logs one line through the broker's log. Interior NULs are replaced, never truncated.
    pub(crate) fn log(&self, level: u32, message: &str) {
        let text = format!("mqttguard: {}", message.replace('\0', "\\0"));
        if let Ok(c) = std::ffi::CString::new(text) {
            // SAFETY: "%s" with one valid NUL-terminated string argument.
            unsafe { (self.log_printf)(level as c_int, c"%s".as_ptr(), c.as_ptr()) };
        }
    }

    /// The client's id and username as the broker has them now: `Ok(None)` when absent,
    /// `Err(())` when present but not UTF-8. A present username is never treated as absent
    /// (a certificate's T61String CN can make one that is not UTF-8 under
    /// `use_identity_as_username`): callers refuse such a client.
    ///
    /// # Safety
    /// `client` must be a client pointer the broker passed to the current callback.
    pub(crate) unsafe fn client_identity<'a>(
        &self,
        client: *const mosquitto,
    ) -> (BrokerStr<'a>, BrokerStr<'a>) {
        // SAFETY: the broker returns NULL or a NUL-terminated string owned by the client,
        // valid for the duration of the callback.
        let id = unsafe { c_str_checked((self.client_id)(client)) };
        // SAFETY: as above.
        let username = unsafe { c_str_checked((self.client_username)(client)) };
        (id, username)
    }

    /// The client's id alone (see [`Broker::client_identity`]).
    ///
    /// # Safety
    /// As for [`Broker::client_identity`].
    pub(crate) unsafe fn client_id<'a>(&self, client: *const mosquitto) -> BrokerStr<'a> {
        // SAFETY: as for client_identity.
        unsafe { c_str_checked((self.client_id)(client)) }
    }

    /// The client's username as the broker's C string, unchecked (see
    /// [`Broker::client_identity`]).
    ///
    /// # Safety
    /// As for [`Broker::client_identity`].
    #[inline]
    pub(crate) unsafe fn client_username_cstr<'a>(
        &self,
        client: *const mosquitto,
    ) -> Option<&'a CStr> {
        // SAFETY: as for client_identity.
        unsafe { c_cstr((self.client_username)(client)) }
    }

    /// The client's id as the broker's C string, unchecked (see
    /// [`Broker::client_identity`]).
    ///
    /// # Safety
    /// As for [`Broker::client_identity`].
    #[inline]
    pub(crate) unsafe fn client_id_cstr<'a>(&self, client: *const mosquitto) -> Option<&'a CStr> {
        // SAFETY: as for client_identity.
        unsafe { c_cstr((self.client_id)(client)) }
    }

    /// The client's address as the broker has it (for throttling and the log); `""` if none.
    ///
    /// # Safety
    /// As for [`Broker::client_identity`].
    pub(crate) unsafe fn client_address<'a>(&self, client: *const mosquitto) -> &'a str {
        // SAFETY: as for client_identity; the address string is owned by the client.
        unsafe { c_str((self.client_address)(client)) }.unwrap_or_default()
    }

    /// # Safety
    /// `identifier` must be the identifier the broker passed to `mosquitto_plugin_init`.
    pub(crate) unsafe fn register(
        &self,
        identifier: *mut mosquitto_plugin_id_t,
        event: u32,
        callback: Callback,
        userdata: *mut c_void,
    ) -> c_int {
        // SAFETY: arguments as the broker documents them; event_data must be NULL.
        unsafe {
            (self.callback_register)(
                identifier,
                event as c_int,
                Some(callback),
                std::ptr::null(),
                userdata,
            )
        }
    }

    /// # Safety
    /// As for [`Broker::register`], with the same callback.
    pub(crate) unsafe fn unregister(
        &self,
        identifier: *mut mosquitto_plugin_id_t,
        event: u32,
        callback: Callback,
    ) -> c_int {
        // SAFETY: as for register.
        unsafe {
            (self.callback_unregister)(identifier, event as c_int, Some(callback), std::ptr::null())
        }
    }

    /// Sets the client's username (ACL `user` blocks and `%u` then see it).
    ///
    /// # Safety
    /// `client` must be the client of the current callback.
    pub(crate) unsafe fn set_client_username(&self, client: *mut mosquitto, name: &str) -> bool {
        let Ok(name) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: per the function contract; the broker copies the name.
        unsafe { (self.set_username)(client, name.as_ptr()) == 0 }
    }

    /// The client's certificate as the broker's `X509 *` (a new reference the caller must
    /// free with the broker's libcrypto), or NULL.
    ///
    /// # Safety
    /// `client` must be the client of the current callback.
    pub(crate) unsafe fn client_certificate(&self, client: *const mosquitto) -> *mut c_void {
        // SAFETY: per the function contract.
        unsafe { (self.client_certificate)(client) }
    }

    /// Whether this broker can answer basic auth later (Mosquitto 2.1).
    pub(crate) fn can_delay_auth(&self) -> bool {
        self.complete_basic_auth.is_some()
    }

    /// Completes a delayed basic auth. Must run on the broker's main thread.
    pub(crate) fn complete_basic_auth(&self, client_id: &str, result: c_int) {
        if let (Some(complete), Ok(id)) =
            (self.complete_basic_auth, std::ffi::CString::new(client_id))
        {
            // SAFETY: a valid NUL-terminated client id; called from the TICK callback, which
            // runs on the broker's main thread.
            unsafe { complete(id.as_ptr(), result) };
        }
    }

    /// Publishes a retained QoS 0 message from the broker itself (for `$SYS` counters). Must
    /// run on the broker's main thread.
    pub(crate) fn publish_retained(&self, topic: &str, payload: &str) {
        let Ok(topic) = std::ffi::CString::new(topic) else {
            return;
        };
        // SAFETY: NULL client id (to every subscriber), a valid topic, `payload.len()` bytes
        // at `payload` which the broker copies, no properties; called from TICK, on the
        // broker's main thread.
        unsafe {
            (self.publish_copy)(
                std::ptr::null(),
                topic.as_ptr(),
                payload.len() as c_int,
                payload.as_ptr() as *const c_void,
                0,
                true,
                std::ptr::null_mut(),
            )
        };
    }

    /// Names the plugin in 2.1's logs; a no-op on 2.0.
    ///
    /// # Safety
    /// `identifier` as for [`Broker::register`].
    pub(crate) unsafe fn set_info(&self, identifier: *mut mosquitto_plugin_id_t) {
        if let Some(set_info) = self.set_info {
            // SAFETY: static NUL-terminated strings; the broker copies them.
            unsafe { set_info(identifier, c"mqttguard".as_ptr(), VERSION.as_ptr()) };
        }
    }
}

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };

/// Borrows the event structure the broker passes to a callback.
///
/// # Safety
/// `event_data` must be NULL or point to a `T` that outlives `'a` (the broker's event struct
/// for the event the callback was registered for).
pub(crate) unsafe fn event_ref<'a, T>(event_data: *mut c_void) -> Option<&'a T> {
    // SAFETY: per the function contract.
    unsafe { (event_data as *const T).as_ref() }
}

/// Borrows a C string (its length is found; nothing is checked): the ACL check's strings
/// before the memo.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
#[inline]
pub(crate) unsafe fn c_cstr<'a>(ptr: *const c_char) -> Option<&'a CStr> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per the function contract.
    Some(unsafe { CStr::from_ptr(ptr) })
}

/// Borrows a C string's bytes, up to its NUL (its length is found; nothing is checked):
/// passwords, which need not be UTF-8.
///
/// # Safety
/// As for [`c_cstr`].
#[inline]
pub(crate) unsafe fn c_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: per the function contract.
    unsafe { c_cstr(ptr) }.map(CStr::to_bytes)
}

/// The bytes as `&str`, if they are UTF-8. Topics, client ids and usernames are nearly
/// always ASCII; checking that is cheaper than full UTF-8 validation on the ACL hot path.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Borrows a C string from the broker as `&str`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<&'a str> {
    // SAFETY: per the function contract.
    unsafe { c_bytes(ptr) }.and_then(utf8)
}

/// A topic's bytes as `&str`, with what one pass over them found
/// ([`crate::topic::scan`]): ASCII needs no further UTF-8 check, and whether it is a topic
/// name comes with it. `None` for bytes that are not UTF-8.
#[inline]
pub(crate) fn topic_str(bytes: &[u8]) -> Option<(&str, crate::topic::Scan)> {
    let scan = crate::topic::scan(bytes);
    let text = if scan.ascii {
        // SAFETY: `scan` found every byte ASCII, which is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        std::str::from_utf8(bytes).ok()?
    };
    Some((text, scan))
}

/// The bytes of a string the broker owns as a [`BrokerStr`].
pub(crate) fn broker_str(bytes: Option<&[u8]>) -> BrokerStr<'_> {
    match bytes {
        None => Ok(None),
        Some(b) => utf8(b).map(Some).ok_or(()),
    }
}

/// A string the broker owns, borrowed as a C string, as a [`BrokerStr`].
pub(crate) fn broker_cstr(text: Option<&CStr>) -> BrokerStr<'_> {
    broker_str(text.map(CStr::to_bytes))
}

/// A string the broker owns: `Ok(None)` absent (NULL), `Err(())` present but not UTF-8.
pub(crate) type BrokerStr<'a> = Result<Option<&'a str>, ()>;

/// Borrows a C string as `&str`, telling a NULL pointer from a string that is not UTF-8.
///
/// # Safety
/// As for [`c_str`].
pub(crate) unsafe fn c_str_checked<'a>(ptr: *const c_char) -> BrokerStr<'a> {
    // SAFETY: per the function contract.
    broker_str(unsafe { c_bytes(ptr) })
}

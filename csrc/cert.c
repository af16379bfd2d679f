/* mqttguard: the only C in the plugin. It touches the broker's OpenSSL objects, which must be
 * encoded and released by the same libcrypto the broker uses (linked dynamically).
 *
 * Rust side (src/plugin/cert.rs):
 *   fn mqttguard_x509_to_der(cert: *mut c_void, der: *mut *mut u8, len: *mut c_int) -> c_int;
 *   fn mqttguard_der_free(der: *mut u8);
 */
#include <openssl/crypto.h>
#include <openssl/x509.h>

/* Encodes the certificate returned by mosquitto_client_certificate() to DER and releases it
 * (that function hands the caller a reference). Returns 0 and sets *der / *len on success;
 * *der must be freed with mqttguard_der_free. The certificate is released in every case. */
int mqttguard_x509_to_der(void *cert, unsigned char **der, int *len)
{
	X509 *x509 = (X509 *)cert;
	unsigned char *out = NULL;
	int n;

	if(der == NULL || len == NULL){
		X509_free(x509);
		return -1;
	}
	*der = NULL;
	*len = 0;
	if(x509 == NULL){
		return -1;
	}
	n = i2d_X509(x509, &out);
	X509_free(x509);
	if(n <= 0 || out == NULL){
		return -1;
	}
	*der = out;
	*len = n;
	return 0;
}

void mqttguard_der_free(unsigned char *der)
{
	OPENSSL_free(der);
}

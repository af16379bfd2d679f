//! Certificate identity: arbitrary and mutated DER through the identity mapping, the
//! RFC 2253 subject string, client-id binding and the revocation list.
//!
//! Input: `<selector> <client id length> <client id> <DER>`. The selector picks the source
//! (cn, san_dns, san_uri, san_email, subject), the client-id policy and whether a prefix and
//! suffix are stripped. The seeds (`fuzz/seeds/identity`) are real certificates made with
//! openssl, so mutations start from well-formed DER.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mqttguard::identity::{
    check_client_id, identity_from_der, subject_string, ClientIdPolicy, IdentityConfig,
    RevocationList, Source,
};

fn revoked() -> &'static RevocationList {
    static LIST: OnceLock<RevocationList> = OnceLock::new();
    LIST.get_or_init(|| {
        RevocationList::parse(
            Path::new("fuzz.revoked"),
            b"# serials and fingerprints\n01\n0A:BC\n0x1f\n\
              e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
        )
        .expect("revocation list")
    })
}

fuzz_target!(|data: &[u8]| {
    let [selector, id_len, rest @ ..] = data else {
        return;
    };
    let id_len = usize::from(*id_len).min(rest.len());
    let (client_id, der) = rest.split_at(id_len);
    let client_id = String::from_utf8_lossy(client_id);
    let source = match selector % 5 {
        0 => Source::Cn,
        1 => Source::SanDns,
        2 => Source::SanUri,
        3 => Source::SanEmail,
        _ => Source::Subject,
    };
    let clientid = match (selector / 5) % 3 {
        0 => ClientIdPolicy::Any,
        1 => ClientIdPolicy::Equal,
        _ => ClientIdPolicy::Prefix,
    };
    let strip = selector / 15;
    let cfg = IdentityConfig {
        source,
        clientid,
        strip_prefix: (strip & 1 != 0).then(|| {
            if source == Source::SanUri {
                "spiffe://example.com/device/".to_string()
            } else {
                "dev-".to_string()
            }
        }),
        strip_suffix: (strip & 2 != 0).then(|| ".clients.mqtt.example.com".to_string()),
        clientid_separator: if strip & 4 != 0 { ":" } else { "-" }.to_string(),
        ..IdentityConfig::default()
    };
    let _ = subject_string(der);
    if let Ok(identity) = identity_from_der(der, &cfg) {
        assert!(!identity.name.is_empty());
        assert!(!identity.name.contains(['/', '+', '#', '\0']));
        assert_eq!(identity.sha256_hex.len(), 64);
        let _ = revoked().is_revoked(&identity);
        let bound = check_client_id(&cfg, &identity.name, &client_id);
        if clientid == ClientIdPolicy::Any {
            assert!(bound.is_ok());
        }
        if clientid == ClientIdPolicy::Equal {
            assert_eq!(bound.is_ok(), client_id == identity.name);
        }
    }
});

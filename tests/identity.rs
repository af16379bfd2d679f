//! Certificate identity mapping with certificates made at test time.

use std::path::Path;

use mqttguard::identity::{
    check_client_id, identity_from_der, ClientIdPolicy, IdentityConfig, IdentityError,
    RevocationList, Source,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Ia5String, KeyPair, SanType,
    SerialNumber,
};

/// A leaf certificate signed by a throw-away CA.
fn cert(cn: Option<DnValue>, sans: Vec<SanType>, serial: &[u8]) -> Vec<u8> {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.subject_alt_names = sans;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf")
        .der()
        .to_vec()
}

fn cn(text: &str) -> Option<DnValue> {
    Some(DnValue::Utf8String(text.to_string()))
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(Ia5String::try_from(s).expect("ia5"))
}

fn config(toml_text: &str) -> IdentityConfig {
    toml::from_str(toml_text).expect("identity config")
}

#[test]
fn common_name_is_the_default_source() {
    let der = cert(cn("dev1"), vec![], &[0x01, 0x02]);
    let id = identity_from_der(&der, &config("")).expect("identity");
    assert_eq!(id.name, "dev1");
    assert_eq!(id.serial_hex, "102");
    assert_eq!(id.sha256_hex.len(), 64);
}

#[test]
fn strip_suffix_match_mismatch_and_empty() {
    let cfg = config("strip_suffix = \".clients.mqtt.example.com\"");
    let der = cert(cn("foo.clients.mqtt.example.com"), vec![], &[1]);
    assert_eq!(identity_from_der(&der, &cfg).expect("id").name, "foo");
    let other = cert(cn("foo.clients.evil.example.com"), vec![], &[1]);
    assert!(matches!(
        identity_from_der(&other, &cfg),
        Err(IdentityError::SuffixMismatch { .. })
    ));
    let empty = cert(cn(".clients.mqtt.example.com"), vec![], &[1]);
    assert!(matches!(
        identity_from_der(&empty, &cfg),
        Err(IdentityError::Empty(_))
    ));
}

#[test]
fn forbidden_characters_and_missing_fields() {
    for bad in ["a/b", "a+b", "a#b", "a\0b"] {
        let der = cert(cn(bad), vec![], &[1]);
        assert!(
            matches!(
                identity_from_der(&der, &config("")),
                Err(IdentityError::Forbidden(_))
            ),
            "{bad:?}"
        );
    }
    let no_cn = cert(None, vec![dns("x.example")], &[1]);
    assert_eq!(
        identity_from_der(&no_cn, &config("")),
        Err(IdentityError::MissingField("common name"))
    );
    let no_san = cert(cn("x"), vec![], &[1]);
    assert!(matches!(
        identity_from_der(&no_san, &config("source = \"san_dns\"")),
        Err(IdentityError::MissingField(_))
    ));
    assert_eq!(
        identity_from_der(b"not a certificate", &config("")),
        Err(IdentityError::BadCertificate)
    );
}

#[test]
fn non_utf8_common_name_is_refused() {
    // A UTF8String CN whose bytes are patched to invalid UTF-8 after signing (the signature
    // does not matter: the broker has verified the chain before the plugin sees it).
    let mut der = cert(cn("dev-QQ"), vec![], &[1]);
    let at = der.windows(6).position(|w| w == b"dev-QQ").expect("marker");
    der[at + 4] = 0xff;
    assert_eq!(
        identity_from_der(&der, &config("")),
        Err(IdentityError::NotUtf8("common name"))
    );
}

#[test]
fn subject_alt_names_first_valid_value_wins() {
    let der = cert(
        cn("ignored"),
        vec![
            dns("bad/name.devices.example.com"),
            dns("other.example.org"),
            dns("dev7.devices.example.com"),
            dns("dev8.devices.example.com"),
            SanType::URI(Ia5String::try_from("spiffe://example.com/device/dev9").expect("uri")),
            SanType::Rfc822Name(Ia5String::try_from("dev10@example.com").expect("email")),
        ],
        &[9],
    );
    let dns_cfg = config("source = \"san_dns\"\nstrip_suffix = \".devices.example.com\"");
    assert_eq!(identity_from_der(&der, &dns_cfg).expect("id").name, "dev7");
    let uri_cfg = config("source = \"san_uri\"\nstrip_prefix = \"spiffe://example.com/device/\"");
    assert_eq!(identity_from_der(&der, &uri_cfg).expect("id").name, "dev9");
    let mail_cfg = config("source = \"san_email\"\nstrip_suffix = \"@example.com\"");
    assert_eq!(
        identity_from_der(&der, &mail_cfg).expect("id").name,
        "dev10"
    );
    let none_cfg = config("source = \"san_dns\"\nstrip_suffix = \".nowhere\"");
    assert!(matches!(
        identity_from_der(&der, &none_cfg),
        Err(IdentityError::NoUsableValue(_))
    ));
    let subject = config("source = \"subject\"");
    assert!(identity_from_der(&der, &subject)
        .expect("subject")
        .name
        .contains("CN=ignored"));
    assert_eq!(config("source = \"subject\"").source, Source::Subject);
}

#[test]
fn client_id_binding() {
    let mut cfg = config("clientid = \"equal\"");
    assert!(check_client_id(&cfg, "dev1", "dev1").is_ok());
    assert!(check_client_id(&cfg, "dev1", "dev1-x").is_err());
    cfg.clientid = ClientIdPolicy::Prefix;
    assert!(check_client_id(&cfg, "dev1", "dev1").is_ok());
    assert!(check_client_id(&cfg, "dev1", "dev1-ui").is_ok());
    assert!(
        check_client_id(&cfg, "dev1", "dev10").is_err(),
        "dev10 is not dev1's"
    );
    assert!(check_client_id(&cfg, "dev1", "xdev1").is_err());
    cfg.clientid = ClientIdPolicy::Any;
    assert!(check_client_id(&cfg, "dev1", "anything").is_ok());
    let bad = config("clientid = \"prefix\"\nclientid_separator = \"\"");
    assert_eq!(bad.validate(), Err(IdentityError::EmptySeparator));
    assert!(
        toml::from_str::<IdentityConfig>("sorce = \"cn\"").is_err(),
        "unknown key"
    );
}

#[test]
fn superusers() {
    let cfg = config("superusers = [\"platform\"]");
    assert!(cfg.is_superuser("platform"));
    assert!(!cfg.is_superuser("platform2"));
}

#[test]
fn revocation_list_formats_and_matching() {
    let der = cert(cn("dev1"), vec![], &[0x00, 0x0a, 0xbc]);
    let id = identity_from_der(&der, &config("")).expect("id");
    assert_eq!(id.serial_hex, "abc");
    let list = RevocationList::parse(
        Path::new("revoked"),
        b"# revoked devices\n\n0A:BC  # stolen\n",
    )
    .expect("list");
    assert!(list.is_revoked(&id));
    let by_fingerprint = RevocationList::parse(
        Path::new("revoked"),
        id.sha256_hex.to_uppercase().as_bytes(),
    )
    .expect("list");
    assert!(by_fingerprint.is_revoked(&id));
    let other = RevocationList::parse(Path::new("revoked"), b"0xabd\n").expect("list");
    assert!(!other.is_revoked(&id));
    let e = RevocationList::parse(Path::new("revoked"), b"abc\nnot-hex\n").expect_err("bad");
    assert_eq!(e.line, 2);
    let too_long = "a".repeat(50);
    let e = RevocationList::parse(Path::new("revoked"), too_long.as_bytes()).expect_err("bad");
    assert_eq!(e.line, 1);
}

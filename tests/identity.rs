//! Certificate identity mapping, with certificates made at test time: rcgen issues a CA and
//! leaf certificates signed by it; subjects rcgen cannot express (multi-valued RDNs, odd
//! string types, invalid bytes) are spliced into an rcgen certificate by hand. The signature
//! then no longer verifies, which does not matter here: the broker verifies the chain before
//! the plugin sees the certificate, and the mapping only reads it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use mqttguard::identity::{
    check_client_id, identity_from_der, subject_string, ClientIdPolicy, IdentityConfig,
    IdentityError, PasswordPolicy, RevocationList, Source,
};
use mqttguard::policy::load_file;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, DnValue,
    Ia5String, IsCa, KeyPair, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

// ---------------------------------------------------------------------------------------
// Certificates

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    let cert = params.self_signed(&key).expect("ca");
    Ca { cert, key }
}

/// A leaf certificate signed by `ca`, subject `O=Example` plus the CN if given.
fn issue(ca: &Ca, cn: Option<DnValue>, sans: Vec<SanType>, serial: &[u8]) -> Vec<u8> {
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
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("leaf")
        .der()
        .to_vec()
}

/// A leaf from a fresh CA.
fn cert(cn: Option<DnValue>, sans: Vec<SanType>, serial: &[u8]) -> Vec<u8> {
    issue(&ca(), cn, sans, serial)
}

fn cn(text: &str) -> Option<DnValue> {
    Some(DnValue::Utf8String(text.to_string()))
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(Ia5String::try_from(s).expect("ia5"))
}

fn uri(s: &str) -> SanType {
    SanType::URI(Ia5String::try_from(s).expect("ia5"))
}

fn email(s: &str) -> SanType {
    SanType::Rfc822Name(Ia5String::try_from(s).expect("ia5"))
}

// DER by hand, for subjects rcgen cannot make.

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        body.extend(groups.iter().rev());
    }
    tlv(0x06, &body)
}

const CN: &[u64] = &[2, 5, 4, 3];
const O: &[u64] = &[2, 5, 4, 10];
const C: &[u64] = &[2, 5, 4, 6];
const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];
const EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];
const DC: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 25];

const UTF8: u8 = 12;
const PRINTABLE: u8 = 19;
const T61: u8 = 20;
const IA5: u8 = 22;
const UNIVERSAL: u8 = 28;
const BMP: u8 = 30;

/// One attribute: (type, string tag, content bytes).
type Atv<'a> = (&'a [u64], u8, Vec<u8>);

/// A Name: RDNs in certificate order, each a set of attributes.
fn name(rdns: &[Vec<Atv>]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for (ty, tag, value) in rdn {
            set.extend(tlv(0x30, &[oid(ty), tlv(*tag, value)].concat()));
        }
        seq.extend(tlv(0x31, &set));
    }
    tlv(0x30, &seq)
}

fn atv(ty: &[u64], tag: u8, value: impl AsRef<[u8]>) -> Atv<'_> {
    (ty, tag, value.as_ref().to_vec())
}

fn bmp(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn universal(s: &str) -> Vec<u8> {
    s.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect()
}

fn header_len(tlv: &[u8]) -> usize {
    if tlv[1] < 0x80 {
        2
    } else {
        2 + usize::from(tlv[1] & 0x7f)
    }
}

/// `der` with its subject replaced by `subject` (a DER Name).
fn with_subject(der: &[u8], subject: &[u8]) -> Vec<u8> {
    let (_, cert) = X509Certificate::from_der(der).expect("parse");
    let base = der.as_ptr() as usize;
    let tbs = cert.tbs_certificate.as_ref();
    let old = cert.tbs_certificate.subject.as_raw();
    let tbs_at = tbs.as_ptr() as usize - base;
    let old_at = old.as_ptr() as usize - base;
    let tbs_end = tbs_at + tbs.len();
    let content = [
        &der[tbs_at + header_len(tbs)..old_at],
        subject,
        &der[old_at + old.len()..tbs_end],
    ]
    .concat();
    tlv(
        0x30,
        &[tlv(0x30, &content).as_slice(), &der[tbs_end..]].concat(),
    )
}

/// A certificate whose subject is `rdns`.
fn cert_named(rdns: &[Vec<Atv>]) -> Vec<u8> {
    with_subject(&cert(cn("placeholder"), vec![], &[1]), &name(rdns))
}

/// What `openssl x509 -nameopt RFC2253` prints for the subject (Mosquitto's
/// `use_subject_as_username` string): `None` without an `openssl` command, `Some(Err)` when
/// OpenSSL cannot read the certificate.
fn openssl_subject(der: &[u8]) -> Option<Result<String, String>> {
    let mut child = Command::new("openssl")
        .args([
            "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(der)
        .expect("write");
    let out = child.wait_with_output().expect("openssl");
    if !out.status.success() {
        return Some(Err(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let line = text.trim_end_matches('\n');
    Some(Ok(line
        .strip_prefix("subject=")
        .expect("subject=")
        .to_string()))
}

fn config(toml_text: &str) -> IdentityConfig {
    let cfg: IdentityConfig = toml::from_str(toml_text).expect("identity config");
    cfg.validate().expect("valid");
    cfg
}

fn name_of(der: &[u8], cfg: &IdentityConfig) -> Result<String, IdentityError> {
    identity_from_der(der, cfg).map(|id| id.name)
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn list(text: &str) -> RevocationList {
    RevocationList::parse(Path::new("revoked"), text.as_bytes()).expect("revocation list")
}

// ---------------------------------------------------------------------------------------
// Sources

#[test]
fn common_name_is_the_default_source() {
    let der = cert(cn("dev1"), vec![dns("other.example")], &[0x01, 0x02]);
    let id = identity_from_der(&der, &config("")).expect("identity");
    assert_eq!(id.name, "dev1");
    assert_eq!(id.serial_hex, "102");
    assert_eq!(id.sha256_hex, sha256_hex(&der));
    assert_eq!(config("").source, Source::Cn);
}

#[test]
fn only_the_first_common_name_counts() {
    let der = cert_named(&[vec![atv(CN, UTF8, "dev1")], vec![atv(CN, UTF8, "platform")]]);
    assert_eq!(name_of(&der, &config("")).as_deref(), Ok("dev1"));
    // A bad first CN is not skipped in favour of a later one.
    let der = cert_named(&[vec![atv(CN, UTF8, "a/b")], vec![atv(CN, UTF8, "dev1")]]);
    assert!(matches!(
        name_of(&der, &config("")),
        Err(IdentityError::Forbidden(_))
    ));
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
            uri("https://example.com/other"),
            uri("spiffe://example.com/device/dev9"),
            email("dev10@example.com"),
            email("dev11@example.com"),
        ],
        &[9],
    );
    let dns_cfg = config("source = \"san_dns\"\nstrip_suffix = \".devices.example.com\"");
    assert_eq!(name_of(&der, &dns_cfg).as_deref(), Ok("dev7"));
    let uri_cfg = config("source = \"san_uri\"\nstrip_prefix = \"spiffe://example.com/device/\"");
    assert_eq!(name_of(&der, &uri_cfg).as_deref(), Ok("dev9"));
    let mail_cfg = config("source = \"san_email\"\nstrip_suffix = \"@example.com\"");
    assert_eq!(name_of(&der, &mail_cfg).as_deref(), Ok("dev10"));
    // Without stripping, the first DNS name (with a '/') is skipped.
    assert_eq!(
        name_of(&der, &config("source = \"san_dns\"")).as_deref(),
        Ok("other.example.org")
    );
    // A URI keeps its '/' unless the prefix is stripped: no URI is usable.
    let e = name_of(&der, &config("source = \"san_uri\"")).expect_err("no usable URI");
    assert!(
        matches!(&e, IdentityError::NoUsableValue { field: "URI subjectAltName", first }
            if matches!(**first, IdentityError::Forbidden(_))),
        "{e:?}"
    );
    // None satisfies the rules: the error says why the first was refused.
    let none = config("source = \"san_dns\"\nstrip_suffix = \".nowhere\"");
    let e = name_of(&der, &none).expect_err("no usable DNS name");
    assert!(
        matches!(&e, IdentityError::NoUsableValue { first, .. }
            if matches!(**first, IdentityError::SuffixMismatch { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("bad/name.devices.example.com"),
        "{e}"
    );
}

#[test]
fn missing_fields() {
    let no_cn = cert(None, vec![dns("x.example")], &[1]);
    assert_eq!(
        name_of(&no_cn, &config("")),
        Err(IdentityError::MissingField("common name"))
    );
    let no_san = cert(cn("x"), vec![], &[1]);
    let e = name_of(&no_san, &config("source = \"san_dns\"")).expect_err("no SAN");
    assert_eq!(e, IdentityError::MissingField("DNS subjectAltName"));
    assert_eq!(e.to_string(), "the certificate has no DNS subjectAltName");
    // SANs present, but none of the configured type.
    let dns_only = cert(cn("x"), vec![dns("x.example")], &[1]);
    assert_eq!(
        name_of(&dns_only, &config("source = \"san_email\"")),
        Err(IdentityError::MissingField("e-mail subjectAltName"))
    );
    assert_eq!(
        name_of(&dns_only, &config("source = \"san_uri\"")),
        Err(IdentityError::MissingField("URI subjectAltName"))
    );
    assert_eq!(
        name_of(b"not a certificate", &config("")),
        Err(IdentityError::BadCertificate)
    );
    assert_eq!(
        subject_string(b"not a certificate"),
        Err(IdentityError::BadCertificate)
    );
}

// ---------------------------------------------------------------------------------------
// Rules

#[test]
fn strip_suffix_match_mismatch_and_empty() {
    let cfg = config("strip_suffix = \".clients.mqtt.example.com\"");
    let der = cert(cn("foo.clients.mqtt.example.com"), vec![], &[1]);
    assert_eq!(name_of(&der, &cfg).as_deref(), Ok("foo"));
    // Several labels stay: only the suffix goes.
    let der = cert(cn("a.b.clients.mqtt.example.com"), vec![], &[1]);
    assert_eq!(name_of(&der, &cfg).as_deref(), Ok("a.b"));
    let other = cert(cn("foo.clients.evil.example.com"), vec![], &[1]);
    let e = name_of(&other, &cfg).expect_err("mismatch");
    assert!(matches!(e, IdentityError::SuffixMismatch { .. }));
    assert!(e.to_string().contains("does not end with"), "{e}");
    // Case matters, as in ACL user lines.
    let upper = cert(cn("foo.CLIENTS.mqtt.example.com"), vec![], &[1]);
    assert!(matches!(
        name_of(&upper, &cfg),
        Err(IdentityError::SuffixMismatch { .. })
    ));
    let empty = cert(cn(".clients.mqtt.example.com"), vec![], &[1]);
    assert_eq!(
        name_of(&empty, &cfg),
        Err(IdentityError::Empty(
            ".clients.mqtt.example.com".to_string()
        ))
    );
    // The suffix is matched on the whole value, not on a label boundary.
    let glued = cert(cn("evil-foo.clients.mqtt.example.com"), vec![], &[1]);
    assert_eq!(name_of(&glued, &cfg).as_deref(), Ok("evil-foo"));
}

#[test]
fn strip_prefix_and_suffix_together() {
    let cfg = config("strip_prefix = \"device:\"\nstrip_suffix = \"@fleet\"");
    let der = cert(cn("device:dev1@fleet"), vec![], &[1]);
    assert_eq!(name_of(&der, &cfg).as_deref(), Ok("dev1"));
    let der = cert(cn("dev1@fleet"), vec![], &[1]);
    assert!(matches!(
        name_of(&der, &cfg),
        Err(IdentityError::PrefixMismatch { .. })
    ));
    let der = cert(cn("device:@fleet"), vec![], &[1]);
    assert!(matches!(name_of(&der, &cfg), Err(IdentityError::Empty(_))));
    let der = cert(cn(""), vec![], &[1]);
    assert!(matches!(
        name_of(&der, &config("")),
        Err(IdentityError::Empty(_))
    ));
}

#[test]
fn forbidden_characters() {
    for bad in ["a/b", "a+b", "a#b", "a\0b", "+", "#", "/"] {
        let der = cert(cn(bad), vec![], &[1]);
        assert!(
            matches!(name_of(&der, &config("")), Err(IdentityError::Forbidden(_))),
            "{bad:?}"
        );
    }
    // The message shows the value escaped: a NUL or newline cannot reach the log raw.
    let der = cert(cn("a\0b\n"), vec![], &[1]);
    let e = name_of(&der, &config("")).expect_err("NUL");
    assert!(e.to_string().contains("a\\0b\\n"), "{e}");
    // Only what is left after stripping counts.
    let der = cert(cn("a/dev1"), vec![], &[1]);
    assert_eq!(
        name_of(&der, &config("strip_prefix = \"a/\"")).as_deref(),
        Ok("dev1")
    );
}

#[test]
fn control_characters_and_non_characters_are_refused() {
    for bad in [
        "dev\u{1}",
        "dev\t1",
        "dev1\n",
        "dev\u{7f}",
        "dev\u{85}",
        "dev\u{9f}",
        "dev\u{fdd0}",
        "dev\u{fffe}",
        "dev\u{1ffff}",
    ] {
        let der = cert(cn(bad), vec![], &[1]);
        assert!(
            matches!(
                name_of(&der, &config("")),
                Err(IdentityError::ControlCharacter(_))
            ),
            "{bad:?}"
        );
    }
    for good in [
        "Jörg",
        "устройство-1",
        "dev 1",
        "dev\u{a0}1",
        "dev\u{fffd}",
        "a:b=c,d",
    ] {
        let der = cert(cn(good), vec![], &[1]);
        assert_eq!(name_of(&der, &config("")).as_deref(), Ok(good));
    }
}

#[test]
fn identities_longer_than_an_mqtt_string_are_refused() {
    let long = "a".repeat(65_536);
    let der = cert(cn(&long), vec![], &[1]);
    assert_eq!(
        name_of(&der, &config("")),
        Err(IdentityError::TooLong(65_536))
    );
    let der = cert(cn(&long[1..]), vec![], &[1]);
    assert_eq!(name_of(&der, &config("")).map(|n| n.len()), Ok(65_535));
}

#[test]
fn common_name_string_types() {
    let cfg = config("");
    let named = |tag, bytes: Vec<u8>| cert_named(&[vec![(CN, tag, bytes)]]);
    // Invalid UTF-8 in a UTF8String.
    assert_eq!(
        name_of(&named(UTF8, vec![b'd', 0xff]), &cfg),
        Err(IdentityError::NotUtf8("common name"))
    );
    // A T61String in Latin-1 is not UTF-8 (Mosquitto refuses it too); ASCII is fine.
    assert_eq!(
        name_of(&named(T61, vec![b'J', 0xf6, b'r', b'g']), &cfg),
        Err(IdentityError::NotUtf8("common name"))
    );
    assert_eq!(
        name_of(&named(T61, b"dev1".to_vec()), &cfg).as_deref(),
        Ok("dev1")
    );
    assert_eq!(
        name_of(&named(PRINTABLE, b"dev1".to_vec()), &cfg).as_deref(),
        Ok("dev1")
    );
    assert_eq!(
        name_of(&named(IA5, b"dev1".to_vec()), &cfg).as_deref(),
        Ok("dev1")
    );
    // BMPString and UniversalString are decoded.
    assert_eq!(
        name_of(&named(BMP, bmp("dév1")), &cfg).as_deref(),
        Ok("dév1")
    );
    assert_eq!(
        name_of(&named(UNIVERSAL, universal("dév1")), &cfg).as_deref(),
        Ok("dév1")
    );
    // Surrogates (UCS-2 has none), odd lengths, code points beyond Unicode.
    for (tag, bytes) in [
        (BMP, vec![0xd8, 0x00, 0x00, 0x41]),
        (BMP, vec![0x00, 0x41, 0x00]),
        (UNIVERSAL, vec![0x00, 0x11, 0x00, 0x00]),
        (UNIVERSAL, vec![0x00, 0x00, 0x41]),
    ] {
        assert_eq!(
            name_of(&named(tag, bytes.clone()), &cfg),
            Err(IdentityError::NotUtf8("common name")),
            "{tag} {bytes:?}"
        );
    }
    // Not a string at all (an OCTET STRING).
    assert_eq!(
        name_of(&named(0x04, b"dev1".to_vec()), &cfg),
        Err(IdentityError::NotText("common name"))
    );
}

// ---------------------------------------------------------------------------------------
// The subject as Mosquitto's use_subject_as_username prints it

/// Subjects and what OpenSSL 3.0's `X509_NAME_print_ex(.., XN_FLAG_RFC2253)` prints for them
/// (checked against `openssl x509 -nameopt RFC2253` by the next test).
fn subject_cases() -> Vec<(Vec<Vec<Atv<'static>>>, &'static str)> {
    vec![
        (
            vec![
                vec![atv(C, PRINTABLE, "DE")],
                vec![atv(O, UTF8, "Example, Inc.")],
                vec![atv(CN, UTF8, "dev1")],
            ],
            "CN=dev1,O=Example\\, Inc.,C=DE",
        ),
        (
            vec![vec![atv(
                CN,
                UTF8,
                " #a,b+c\"d\\e<f>g;h=i\u{1}\u{7f}\u{80} ",
            )]],
            "CN=\\ #a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h=i\\01\\7F\\C2\\80\\ ",
        ),
        (vec![vec![atv(CN, UTF8, "#a")]], "CN=\\#a"),
        (vec![vec![atv(CN, UTF8, "a#")]], "CN=a#"),
        (vec![vec![atv(CN, UTF8, "#")]], "CN=#"),
        (vec![vec![atv(CN, UTF8, " ")]], "CN=\\ "),
        (vec![vec![atv(CN, UTF8, "")]], "CN="),
        (vec![vec![atv(CN, UTF8, "a\0b")]], "CN=a\\00b"),
        (vec![vec![atv(CN, UTF8, "Jörg")]], "CN=J\\C3\\B6rg"),
        (vec![vec![atv(CN, T61, [b'J', 0xf6])]], "CN=J\\C3\\B6"),
        (vec![vec![atv(CN, BMP, bmp("dév"))]], "CN=d\\C3\\A9v"),
        (
            vec![vec![atv(CN, UNIVERSAL, universal("a\u{1F600}"))]],
            "CN=a\\F0\\9F\\98\\80",
        ),
        (
            vec![
                vec![atv(CN, UTF8, "a"), atv(UID, UTF8, "b")],
                vec![atv(O, UTF8, "x")],
            ],
            "O=x,UID=b+CN=a",
        ),
        (
            vec![
                vec![atv(DC, IA5, "com")],
                vec![atv(DC, IA5, "example")],
                vec![atv(EMAIL, IA5, "dev1@example.com")],
                vec![atv(&[0, 9, 2342, 19200300, 100, 1, 9], UTF8, "h")],
            ],
            "host=h,emailAddress=dev1@example.com,DC=example,DC=com",
        ),
        (
            vec![
                vec![atv(&[1, 2, 3, 4], UTF8, "x")],
                vec![atv(CN, UTF8, "y")],
            ],
            "CN=y,1.2.3.4=#0C0178",
        ),
        (vec![], ""),
    ]
}

#[test]
fn subject_string_is_mosquittos_use_subject_as_username() {
    for (rdns, expected) in subject_cases() {
        let der = cert_named(&rdns);
        assert_eq!(subject_string(&der).as_deref(), Ok(expected));
    }
    // rcgen's own subject.
    let der = cert(cn("dev1"), vec![], &[1]);
    assert_eq!(subject_string(&der).as_deref(), Ok("CN=dev1,O=Example"));
}

#[test]
fn subject_string_matches_openssl() {
    let mut checked = 0;
    for (rdns, expected) in subject_cases() {
        let der = cert_named(&rdns);
        let Some(printed) = openssl_subject(&der) else {
            eprintln!("no `openssl` command: comparison skipped");
            return;
        };
        assert_eq!(printed.as_deref(), Ok(expected));
        checked += 1;
    }
    assert!(checked > 10);
}

#[test]
fn subject_source_applies_the_rules() {
    let cfg = config("source = \"subject\"");
    let der = cert_named(&[
        vec![atv(C, PRINTABLE, "DE")],
        vec![atv(O, UTF8, "Example, Inc.")],
        vec![atv(CN, UTF8, "dev1")],
    ]);
    assert_eq!(
        name_of(&der, &cfg).as_deref(),
        Ok("CN=dev1,O=Example\\, Inc.,C=DE")
    );
    let stripped = config("source = \"subject\"\nstrip_suffix = \",O=Example\\\\, Inc.,C=DE\"");
    assert_eq!(name_of(&der, &stripped).as_deref(), Ok("CN=dev1"));
    // A multi-valued RDN prints a '+', an attribute OpenSSL does not know a '#'.
    for rdns in [
        vec![vec![atv(CN, UTF8, "a"), atv(UID, UTF8, "b")]],
        vec![vec![atv(CN, UTF8, "a+b")]],
        vec![vec![atv(O, UTF8, "a/b")], vec![atv(CN, UTF8, "dev1")]],
        vec![vec![atv(&[1, 2, 3, 4], UTF8, "x")]],
    ] {
        let der = cert_named(&rdns);
        assert!(
            matches!(name_of(&der, &cfg), Err(IdentityError::Forbidden(_))),
            "{:?}",
            subject_string(&der)
        );
    }
    assert!(matches!(
        name_of(&cert_named(&[]), &cfg),
        Err(IdentityError::Empty(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Client id, superusers, configuration

#[test]
fn client_id_binding() {
    let mut cfg = config("clientid = \"equal\"");
    assert!(check_client_id(&cfg, "dev1", "dev1").is_ok());
    assert!(check_client_id(&cfg, "dev1", "dev1-x").is_err());
    assert!(check_client_id(&cfg, "dev1", "DEV1").is_err());
    assert!(check_client_id(&cfg, "dev1", "").is_err());
    cfg.clientid = ClientIdPolicy::Prefix;
    assert!(
        check_client_id(&cfg, "dev1", "dev1").is_ok(),
        "bare identity"
    );
    assert!(check_client_id(&cfg, "dev1", "dev1-ui").is_ok());
    assert!(check_client_id(&cfg, "dev1", "dev1-").is_ok());
    assert!(
        check_client_id(&cfg, "dev1", "dev10").is_err(),
        "dev10 is not dev1's"
    );
    assert!(check_client_id(&cfg, "dev1", "xdev1").is_err());
    assert!(check_client_id(&cfg, "dev1", "dev1_ui").is_err());
    assert!(check_client_id(&cfg, "dev1", "").is_err());
    let e = check_client_id(&cfg, "dev1", "evil\nline").expect_err("mismatch");
    assert_eq!(
        e.to_string(),
        "client id \"evil\\nline\" is not bound to identity \"dev1\""
    );
    cfg.clientid = ClientIdPolicy::Any;
    assert!(check_client_id(&cfg, "dev1", "anything").is_ok());
    assert!(check_client_id(&cfg, "dev1", "").is_ok());
    let colon = config("clientid = \"prefix\"\nclientid_separator = \":\"");
    assert!(check_client_id(&colon, "dev-1", "dev-1:ui").is_ok());
    assert!(check_client_id(&colon, "dev", "dev-1").is_err());
    let long = config("clientid = \"prefix\"\nclientid_separator = \"::\"");
    assert!(check_client_id(&long, "dev1", "dev1::ui").is_ok());
    assert!(check_client_id(&long, "dev1", "dev1:ui").is_err());
}

#[test]
fn superusers() {
    let cfg = config("superusers = [\"platform\", \"ops\"]");
    assert!(cfg.is_superuser("platform"));
    assert!(cfg.is_superuser("ops"));
    assert!(!cfg.is_superuser("platform2"));
    assert!(!cfg.is_superuser("Platform"));
    assert!(!cfg.is_superuser(""));
    assert!(!config("").is_superuser("platform"));
}

#[test]
fn configuration() {
    let cfg = config("");
    assert_eq!(cfg.source, Source::Cn);
    assert_eq!(cfg.password, PasswordPolicy::Ignore);
    assert_eq!(cfg.clientid, ClientIdPolicy::Any);
    assert_eq!(cfg.clientid_separator, "-");
    assert!(cfg.superusers.is_empty() && cfg.revoked.is_none());
    assert!(cfg.strip_prefix.is_none() && cfg.strip_suffix.is_none());
    let full = config(
        "source = \"san_email\"\npassword = \"require\"\nclientid = \"prefix\"\n\
         revoked = \"/etc/mosquitto/revoked.txt\"",
    );
    assert_eq!(full.source, Source::SanEmail);
    assert_eq!(full.password, PasswordPolicy::Require);
    assert_eq!(
        full.revoked.as_deref(),
        Some(Path::new("/etc/mosquitto/revoked.txt"))
    );
    assert_eq!(config("source = \"san_dns\"").source, Source::SanDns);
    assert_eq!(config("source = \"san_uri\"").source, Source::SanUri);
    assert_eq!(config("source = \"subject\"").source, Source::Subject);
    assert_eq!(
        config("clientid = \"equal\"").clientid,
        ClientIdPolicy::Equal
    );
    for bad in [
        "sorce = \"cn\"",
        "source = \"CN\"",
        "source = \"san\"",
        "password = \"maybe\"",
        "clientid = \"suffix\"",
        "superusers = \"platform\"",
    ] {
        assert!(toml::from_str::<IdentityConfig>(bad).is_err(), "{bad}");
    }
    let no_separator: IdentityConfig =
        toml::from_str("clientid = \"prefix\"\nclientid_separator = \"\"").expect("toml");
    assert_eq!(no_separator.validate(), Err(IdentityError::EmptySeparator));
    // An empty separator is harmless when the prefix rule is off.
    let unused: IdentityConfig = toml::from_str("clientid_separator = \"\"").expect("toml");
    assert_eq!(unused.validate(), Ok(()));
    let empty_superuser: IdentityConfig =
        toml::from_str("superusers = [\"platform\", \"\"]").expect("toml");
    assert_eq!(
        empty_superuser.validate(),
        Err(IdentityError::EmptySuperuser)
    );
    // The section inside the whole configuration file.
    let whole = mqttguard::config::Config::parse(
        Path::new("mqttguard.toml"),
        b"[identity]\nsource = \"san_dns\"\nsuperusers = [\"platform\"]\n",
    )
    .expect("config");
    let id = whole.identity.expect("[identity]");
    assert_eq!(id.source, Source::SanDns);
    assert!(id.is_superuser("platform"));
    assert!(mqttguard::config::Config::parse(Path::new("c"), b"[identity]\nbogus = 1\n").is_err());
    assert!(mqttguard::config::Config::parse(Path::new("c"), b"")
        .expect("empty")
        .identity
        .is_none());
}

// ---------------------------------------------------------------------------------------
// Revocation

#[test]
fn revocation_list_formats() {
    let l = list(
        "\u{feff}# revoked devices\n\
         \n\
         0A:BC   # stolen 2024-05-01\n\
         0x0abd\r\n\
         \t00ABE\t\n\
         serial=0ABF\n\
         SERIAL = 0AC0\n\
         abc\n\
         sha256 Fingerprint=AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\n\
         SHA256 Fingerprint=aabbccddeeff00112233445566778899aabbccddeeff001122334455667788ff\n\
         0000000000000000000000000000000000000000000000000000000000000001\n\
         0\n\
         # the end",
    );
    // Serials abc (twice), abd, abe, abf, ac0, 0; three fingerprints.
    assert_eq!(l.len(), 9);
    assert!(!l.is_empty());
    assert!(list("").is_empty());
    assert!(list("# nothing\n\n   \n").is_empty());
    // A 20-byte serial, with and without a sign byte.
    assert_eq!(list(&"ab".repeat(20)).len(), 1);
    assert_eq!(list(&format!("00{}", "ab".repeat(20))).len(), 1);
}

#[test]
fn revocation_list_bad_lines_name_their_line() {
    let cases: [(&[u8], usize); 10] = [
        (b"abc\nnot-hex\n", 2),
        (b"# c\n\nabc def\n", 3),
        (b"0x\n", 1),
        (b":::\n", 1),
        (b"abc\n\n\nab:cd:ef:gg\n", 4),
        // 21 bytes: too long for a serial, too short for a fingerprint.
        (b"abababababababababababababababababababab01\n", 1),
        // 65 digits.
        (
            b"0000000000000000000000000000000000000000000000000000000000000000a\n",
            1,
        ),
        // Other digests cannot be matched.
        (
            b"sha1 Fingerprint=AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD\n",
            1,
        ),
        (b"sha256 Fingerprint=abc\n", 1),
        (b"abc\n\xff\xfe\n", 2),
    ];
    for (text, line) in cases {
        let e = RevocationList::parse(Path::new("/etc/mosquitto/revoked.txt"), text)
            .expect_err("bad line");
        assert_eq!(e.line, line, "{:?}", String::from_utf8_lossy(text));
        assert!(
            e.to_string()
                .starts_with(&format!("/etc/mosquitto/revoked.txt:{line}: ")),
            "{e}"
        );
    }
    let e = RevocationList::parse(Path::new("r"), b"\xff\n").expect_err("not UTF-8");
    assert_eq!(e.error, IdentityError::RevocationNotUtf8);
    let e = RevocationList::parse(Path::new("r"), b"abc\nsecret-ish\n").expect_err("bad");
    assert_eq!(
        e.error,
        IdentityError::BadRevocationEntry("secret-ish".to_string())
    );
}

#[test]
fn revocation_matches_serial_or_fingerprint() {
    let ca = ca();
    // The high bit set: DER adds a zero byte, which does not count.
    let der = issue(&ca, cn("dev1"), vec![], &[0x80, 0x0a, 0xbc]);
    let other = issue(&ca, cn("dev2"), vec![], &[0x80, 0x0a, 0xbd]);
    let id = identity_from_der(&der, &config("")).expect("id");
    let other_id = identity_from_der(&other, &config("")).expect("id");
    assert_eq!(id.serial_hex, "800abc");
    for entry in [
        "800abc",
        "80:0A:BC",
        "0x00800ABC",
        "serial=00800ABC",
        "00:80:0a:bc",
    ] {
        let l = list(entry);
        assert!(l.is_revoked(&id), "{entry}");
        assert!(!l.is_revoked(&other_id), "{entry}");
    }
    let fingerprint = sha256_hex(&der);
    let colons = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).expect("hex").to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    for entry in [
        fingerprint.clone(),
        fingerprint.to_uppercase(),
        colons.clone(),
        format!("sha256 Fingerprint={colons}"),
    ] {
        let l = list(&entry);
        assert!(l.is_revoked(&id), "{entry}");
        assert!(!l.is_revoked(&other_id), "{entry}");
    }
    // A serial is never compared with a fingerprint or the reverse.
    assert!(!list(&other_id.serial_hex).is_revoked(&id));
    assert!(!list("# dev1 is fine\n").is_revoked(&id));
}

#[test]
fn revocation_accepts_what_openssl_prints() {
    let der = cert(cn("dev1"), vec![], &[0x0f, 0xff, 0x01]);
    let id = identity_from_der(&der, &config("")).expect("id");
    let mut lines = String::new();
    for args in [&["-serial"][..], &["-fingerprint", "-sha256"][..]] {
        let child = Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("no `openssl` command: comparison skipped");
            return;
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&der)
            .expect("write");
        let out = child.wait_with_output().expect("openssl");
        assert!(out.status.success());
        let line = String::from_utf8(out.stdout).expect("utf-8");
        assert!(list(&line).is_revoked(&id), "{line}");
        lines.push_str(&line);
    }
    assert_eq!(list(&lines).len(), 2);
}

#[test]
fn revocation_list_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("revoked.txt");
    std::fs::write(&path, "# stolen\n0abc\n").expect("write");
    assert_eq!(
        load_file(&path, RevocationList::parse).expect("load").len(),
        1
    );
    std::fs::write(&path, "0abc\nnope\n").expect("write");
    let e = load_file(&path, RevocationList::parse).expect_err("bad line");
    assert!(e.to_string().contains("revoked.txt:2:"), "{e}");
    assert!(load_file(&dir.path().join("missing"), RevocationList::parse).is_err());
    assert!(
        load_file(dir.path(), RevocationList::parse).is_err(),
        "a directory"
    );
}

#[test]
fn prefix_mode_refuses_identities_containing_the_separator() {
    let cfg: IdentityConfig = toml::from_str("clientid = \"prefix\"").expect("config");
    // `dev` must not claim `dev-1`'s client ids, and `dev-1` itself cannot be bound safely.
    assert!(check_client_id(&cfg, "dev-1", "dev-1").is_err());
    assert!(
        check_client_id(&cfg, "dev", "dev-1").is_ok(),
        "dev-1 is then no identity's"
    );
    let colon: IdentityConfig =
        toml::from_str("clientid = \"prefix\"\nclientid_separator = \":\"").expect("config");
    assert!(check_client_id(&colon, "dev-1", "dev-1:ui").is_ok());
    assert!(check_client_id(&colon, "dev", "dev-1").is_err());
}

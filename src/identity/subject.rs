//! Certificate name attributes as text: the CN for `source = "cn"`, and the whole subject the
//! way Mosquitto's `use_subject_as_username` prints it (OpenSSL `X509_NAME_print_ex` with
//! `XN_FLAG_RFC2253`, `crypto/asn1/a_strex.c`), byte for byte, so ACL files written for that
//! option keep working with `source = "subject"`.

use std::fmt::Write;

use x509_parser::der_parser::asn1_rs::{Any, Class};
use x509_parser::x509::X509Name;

use super::IdentityError;

// Universal tag numbers of the string types.
const UTF8_STRING: u32 = 12;
const NUMERIC_STRING: u32 = 18;
const PRINTABLE_STRING: u32 = 19;
const T61_STRING: u32 = 20;
const IA5_STRING: u32 = 22;
const UNIVERSAL_STRING: u32 = 28;
const BMP_STRING: u32 = 30;

/// The text of a name attribute (the CN). The byte-oriented string types must hold UTF-8, as
/// Mosquitto requires of the CN (a T61String in Latin-1 is refused); BMPString and
/// UniversalString are decoded (Mosquitto takes their raw bytes and so refuses them: an
/// ASCII name in them contains NULs).
pub(crate) fn attribute_text(
    value: &Any<'_>,
    field: &'static str,
) -> Result<String, IdentityError> {
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return Err(IdentityError::NotText(field));
    }
    let data = value.data;
    let not_utf8 = || IdentityError::NotUtf8(field);
    match value.header.tag().0 {
        // The other string types never get here: OpenSSL refuses them in a name.
        UTF8_STRING | NUMERIC_STRING | PRINTABLE_STRING | T61_STRING | IA5_STRING => {
            std::str::from_utf8(data)
                .map(str::to_string)
                .map_err(|_| not_utf8())
        }
        // UCS-2: no surrogates (OpenSSL refuses to load a certificate with them).
        BMP_STRING => {
            if data.len() % 2 != 0 {
                return Err(not_utf8());
            }
            data.chunks_exact(2)
                .map(|u| char::from_u32(u32::from(u16::from_be_bytes([u[0], u[1]]))))
                .collect::<Option<String>>()
                .ok_or_else(not_utf8)
        }
        UNIVERSAL_STRING => {
            if data.len() % 4 != 0 {
                return Err(not_utf8());
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or_else(not_utf8)
        }
        _ => Err(IdentityError::NotText(field)),
    }
}

/// How OpenSSL reads a string type's characters (`tag2nbyte` in `a_strex.c`).
#[derive(Clone, Copy)]
enum Width {
    /// UTF8String: printed byte by byte (it is already UTF-8).
    Bytes,
    /// One byte per character, taken as Latin-1 and converted to UTF-8.
    Latin1,
    /// BMPString: two bytes per character.
    Two,
    /// UniversalString: four bytes per character.
    Four,
}

fn width(value: &Any<'_>) -> Option<Width> {
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    match value.header.tag().0 {
        UTF8_STRING => Some(Width::Bytes),
        // OpenSSL's table also has UTCTime, GeneralizedTime and VisibleString, but OpenSSL
        // refuses to load a certificate with those (or Videotex-, Graphic-, GeneralString)
        // in a name, so such a client never gets as far as the plugin.
        NUMERIC_STRING | PRINTABLE_STRING | T61_STRING | IA5_STRING => Some(Width::Latin1),
        UNIVERSAL_STRING => Some(Width::Four),
        BMP_STRING => Some(Width::Two),
        _ => None,
    }
}

/// The name printed as `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`: entries from last to
/// first, `,` between RDNs and `+` within a multi-valued one, OpenSSL's short names,
/// `OID=#<DER hex>` for attributes OpenSSL does not know.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> Result<String, IdentityError> {
    let entries: Vec<_> = name
        .iter()
        .enumerate()
        .flat_map(|(set, rdn)| rdn.iter().map(move |attr| (set, attr)))
        .collect();
    let mut out = String::new();
    let mut prev = None;
    for (set, attr) in entries.into_iter().rev() {
        if let Some(prev) = prev {
            out.push(if prev == set { '+' } else { ',' });
        }
        prev = Some(set);
        let oid = attr.attr_type().to_id_string();
        let value = attr.attr_value();
        match short_name(&oid) {
            Some(sn) => {
                out.push_str(sn);
                out.push('=');
                match width(value) {
                    Some(w) => print_string(&mut out, value.data, w)?,
                    None => dump(&mut out, value),
                }
            }
            None => {
                out.push_str(&oid);
                out.push('=');
                dump(&mut out, value);
            }
        }
    }
    Ok(out)
}

/// `do_buf` with `ASN1_STRFLGS_RFC2253`: characters converted to UTF-8, each byte escaped.
fn print_string(out: &mut String, data: &[u8], width: Width) -> Result<(), IdentityError> {
    let unprintable = || IdentityError::NotUtf8("subject");
    let chars: Vec<u32> = match width {
        Width::Bytes => {
            // OpenSSL refuses to load a certificate with an invalid UTF8String.
            std::str::from_utf8(data).map_err(|_| unprintable())?;
            data.iter().map(|&b| u32::from(b)).collect()
        }
        Width::Latin1 => data.iter().map(|&b| u32::from(b)).collect(),
        Width::Two => {
            if data.len() % 2 != 0 {
                return Err(unprintable());
            }
            data.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        }
        Width::Four => {
            if data.len() % 4 != 0 {
                return Err(unprintable());
            }
            data.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    };
    let count = chars.len();
    for (i, &c) in chars.iter().enumerate() {
        // The last-character flag replaces the first-character one (a lone `#` is not
        // escaped), as in OpenSSL.
        let position = if i + 1 == count {
            Position::Last
        } else if i == 0 {
            Position::First
        } else {
            Position::Middle
        };
        if let Width::Bytes = width {
            escape_byte(out, c as u8, position);
            continue;
        }
        // Surrogates and values beyond Unicode: OpenSSL refuses to load such a certificate.
        let ch = char::from_u32(c).ok_or_else(unprintable)?;
        let mut buf = [0u8; 4];
        for &b in ch.encode_utf8(&mut buf).as_bytes() {
            escape_byte(out, b, position);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    First,
    Middle,
    Last,
}

/// `do_esc_char` with `ESC_2253 | ESC_CTRL | ESC_MSB` (`charmap.h` for the character classes).
fn escape_byte(out: &mut String, b: u8, position: Position) {
    let rfc2253_special = matches!(b, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\');
    let edge_special = match position {
        Position::First => b == b' ' || b == b'#',
        Position::Last => b == b' ',
        Position::Middle => false,
    };
    if b <= 0x7f && (rfc2253_special || edge_special) {
        out.push('\\');
        out.push(char::from(b));
    } else if !(0x20..0x7f).contains(&b) {
        let _ = write!(out, "\\{b:02X}");
    } else {
        out.push(char::from(b));
    }
}

/// `do_dump` with `ASN1_STRFLGS_DUMP_DER`: `#` and the value's DER encoding in uppercase hex.
/// The `#` makes such a subject fail the identity rules.
fn dump(out: &mut String, value: &Any<'_>) {
    out.push('#');
    let mut der = Vec::with_capacity(value.data.len() + 6);
    match value.header.raw_tag() {
        Some(tag) => der.extend_from_slice(tag),
        None => {
            let class = (value.header.class() as u8) << 6;
            let constructed = if value.header.is_constructed() {
                0x20
            } else {
                0
            };
            der.push(class | constructed | (value.header.tag().0 & 0x1f) as u8);
        }
    }
    let len = value.data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(value.data);
    for b in der {
        let _ = write!(out, "{b:02X}");
    }
}

/// OpenSSL's short names (`OBJ_nid2sn`) for the attribute arcs that occur in certificate
/// subjects, read from OpenSSL 3.0's object table. An attribute outside this table is dumped
/// as OpenSSL dumps one it does not know, and the client is refused.
fn short_name(oid: &str) -> Option<&'static str> {
    if let Some(n) = oid.strip_prefix("2.5.4.") {
        return X520.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    }
    if let Some(n) = oid.strip_prefix("0.9.2342.19200300.100.1.") {
        return PILOT.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    }
    OTHER.iter().find(|(k, _)| *k == oid).map(|(_, v)| *v)
}

/// 2.5.4.x
const X520: &[(&str, &str)] = &[
    ("3", "CN"),
    ("4", "SN"),
    ("5", "serialNumber"),
    ("6", "C"),
    ("7", "L"),
    ("8", "ST"),
    ("9", "street"),
    ("10", "O"),
    ("11", "OU"),
    ("12", "title"),
    ("13", "description"),
    ("14", "searchGuide"),
    ("15", "businessCategory"),
    ("16", "postalAddress"),
    ("17", "postalCode"),
    ("18", "postOfficeBox"),
    ("19", "physicalDeliveryOfficeName"),
    ("20", "telephoneNumber"),
    ("21", "telexNumber"),
    ("22", "teletexTerminalIdentifier"),
    ("23", "facsimileTelephoneNumber"),
    ("24", "x121Address"),
    ("25", "internationaliSDNNumber"),
    ("26", "registeredAddress"),
    ("27", "destinationIndicator"),
    ("28", "preferredDeliveryMethod"),
    ("29", "presentationAddress"),
    ("30", "supportedApplicationContext"),
    ("31", "member"),
    ("32", "owner"),
    ("33", "roleOccupant"),
    ("34", "seeAlso"),
    ("35", "userPassword"),
    ("36", "userCertificate"),
    ("37", "cACertificate"),
    ("38", "authorityRevocationList"),
    ("39", "certificateRevocationList"),
    ("40", "crossCertificatePair"),
    ("41", "name"),
    ("42", "GN"),
    ("43", "initials"),
    ("44", "generationQualifier"),
    ("45", "x500UniqueIdentifier"),
    ("46", "dnQualifier"),
    ("47", "enhancedSearchGuide"),
    ("48", "protocolInformation"),
    ("49", "distinguishedName"),
    ("50", "uniqueMember"),
    ("51", "houseIdentifier"),
    ("52", "supportedAlgorithms"),
    ("53", "deltaRevocationList"),
    ("54", "dmdName"),
    ("65", "pseudonym"),
    ("72", "role"),
    ("97", "organizationIdentifier"),
    ("98", "c3"),
    ("99", "n3"),
    ("100", "dnsName"),
];

/// 0.9.2342.19200300.100.1.x (RFC 1274 / RFC 4519 attributes).
const PILOT: &[(&str, &str)] = &[
    ("1", "UID"),
    ("2", "textEncodedORAddress"),
    ("3", "mail"),
    ("4", "info"),
    ("5", "favouriteDrink"),
    ("6", "roomNumber"),
    ("7", "photo"),
    ("8", "userClass"),
    ("9", "host"),
    ("10", "manager"),
    ("11", "documentIdentifier"),
    ("12", "documentTitle"),
    ("13", "documentVersion"),
    ("14", "documentAuthor"),
    ("15", "documentLocation"),
    ("20", "homeTelephoneNumber"),
    ("21", "secretary"),
    ("22", "otherMailbox"),
    ("23", "lastModifiedTime"),
    ("24", "lastModifiedBy"),
    ("25", "DC"),
    ("26", "aRecord"),
    ("27", "pilotAttributeType27"),
    ("28", "mXRecord"),
    ("29", "nSRecord"),
    ("30", "sOARecord"),
    ("31", "cNAMERecord"),
    ("37", "associatedDomain"),
    ("38", "associatedName"),
    ("39", "homePostalAddress"),
    ("40", "personalTitle"),
    ("41", "mobileTelephoneNumber"),
    ("42", "pagerTelephoneNumber"),
    ("43", "friendlyCountryName"),
    ("44", "uid"),
    ("45", "organizationalStatus"),
    ("46", "janetMailbox"),
    ("47", "mailPreferenceOption"),
    ("48", "buildingName"),
    ("49", "dSAQuality"),
    ("50", "singleLevelQuality"),
    ("51", "subtreeMinimumQuality"),
    ("52", "subtreeMaximumQuality"),
    ("53", "personalSignature"),
    ("54", "dITRedirect"),
    ("55", "audio"),
    ("56", "documentPublisher"),
];

/// Other arcs, by full OID.
const OTHER: &[(&str, &str)] = &[
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.2.840.113549.1.9.2", "unstructuredName"),
    ("1.2.840.113549.1.9.8", "unstructuredAddress"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

//! The partners document as written: `{"$schema": …, "partners": [ … ]}`.
//!
//! Owns: the document's syntax and every rule that can be checked on the text alone, with
//! errors that give the line, the column and the JSON path of the problem. Validation runs
//! inside the `Deserialize` impls, so every error carries serde_json's position.
//! `partners.schema.json` at the repository root describes the same rules for editors;
//! `tests/partners.rs` checks that the two agree.
//! Must not: know the trusted CAs (issuers are resolved by `matcher`), read files, or log.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

/// The largest document accepted, in bytes (1,000 partners take about 300 KB).
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// The most partners one document may name.
pub const MAX_PARTNERS: usize = 10_000;
/// The longest partner name.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest match value (a name, URI or email).
pub const MAX_VALUE_CHARS: usize = 1024;
/// The largest `notAfterWarningDays`.
pub const MAX_WARNING_DAYS: u32 = 3650;

/// Why a document was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}, at {path}: {message}")]
pub struct DocumentError {
    /// 1-based; 0 when the problem is not at a position (the document is too large).
    pub line: usize,
    pub column: usize,
    /// JSON path of the value at fault, e.g. `$.partners[2].match[0].dnsName`.
    pub path: String,
    pub message: String,
}

/// A parsed, syntactically valid partners document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    pub partners: Partners,
}

/// The partners, with unique names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<Partner>")]
pub struct Partners(pub Vec<Partner>);

/// One partner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPartner")]
pub struct Partner {
    pub name: String,
    /// The CAs its certificates must chain to (any one of them); empty when omitted.
    pub issuer: Vec<Issuer>,
    /// Any one block matching identifies the partner (several: rotation).
    pub blocks: Vec<MatchBlock>,
    pub functions: Functions,
    pub not_after_warning_days: Option<u32>,
}

/// A CA named by its SHA-256 fingerprint or its subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Issuer {
    Sha256([u8; 32]),
    /// As `cert-info` shows an issuer, e.g. `CN=Contoso Issuing CA, O=Contoso`.
    Subject(String),
}

/// The functions a partner may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Functions {
    /// `*`: every function.
    All,
    Only(Vec<String>),
}

impl Functions {
    pub fn allows(&self, function: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == function),
        }
    }

    /// As written in a document: `["*"]` or the names.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(n) => n.clone(),
        }
    }
}

/// Fields that must all match one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawBlock")]
pub struct MatchBlock {
    pub common_name: Option<String>,
    pub dns_name: Option<String>,
    pub uri: Option<String>,
    pub email: Option<String>,
    /// Unsigned big-endian bytes, leading zeros removed.
    pub serial_number: Option<Vec<u8>>,
    pub spki_sha256: Option<[u8; 32]>,
    pub thumbprint_sha256: Option<[u8; 32]>,
    pub thumbprint_sha1: Option<[u8; 20]>,
    /// Overrides the partner's `issuer` for this block.
    pub issuer: Option<Vec<Issuer>>,
}

impl MatchBlock {
    /// Whether the block names the certificate or key itself (only pins), so it needs no
    /// issuer.
    pub fn is_pin_only(&self) -> bool {
        !self.has_name_field()
    }

    /// Whether any field is a name a CA vouches for (CN, SANs, serial).
    pub fn has_name_field(&self) -> bool {
        self.common_name.is_some()
            || self.dns_name.is_some()
            || self.uri.is_some()
            || self.email.is_some()
            || self.serial_number.is_some()
    }
}

/// Parses and validates a document.
pub fn parse(text: &str) -> Result<Document, DocumentError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError {
            line: 0,
            column: 0,
            path: "$".to_owned(),
            message: format!(
                "the document is {} bytes, more than the {MAX_DOCUMENT_BYTES} allowed",
                text.len()
            ),
        });
    }
    // Editors on Windows save UTF-8 with a byte-order mark; JSON has no place for it.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let doc: Document = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = json_path(&e.path().to_string());
        from_json_error(e.inner(), path)
    })?;
    de.end().map_err(|e| from_json_error(&e, "$".to_owned()))?;
    Ok(doc)
}

fn json_path(p: &str) -> String {
    if p == "." || p.is_empty() {
        "$".to_owned()
    } else if p.starts_with('[') {
        format!("${p}")
    } else {
        format!("$.{p}")
    }
}

fn from_json_error(e: &serde_json::Error, path: String) -> DocumentError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    DocumentError {
        line,
        column,
        path,
        message,
    }
}

// === the raw shapes and their checks ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPartner {
    name: Name,
    #[serde(default)]
    issuer: Option<OneOrMany<Issuer>>,
    #[serde(rename = "match")]
    matches: OneOrMany<MatchBlock>,
    functions: Vec<FunctionName>,
    #[serde(default)]
    not_after_warning_days: Option<WarningDays>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBlock {
    common_name: Option<Value>,
    dns_name: Option<Value>,
    uri: Option<Value>,
    email: Option<Value>,
    serial_number: Option<Serial>,
    spki_sha256: Option<Hex<32>>,
    thumbprint_sha256: Option<Hex<32>>,
    thumbprint_sha1: Option<Hex<20>>,
    issuer: Option<OneOrMany<Issuer>>,
}

impl TryFrom<Vec<Partner>> for Partners {
    type Error = String;
    fn try_from(partners: Vec<Partner>) -> Result<Self, String> {
        if partners.len() > MAX_PARTNERS {
            return Err(format!(
                "{} partners, more than the {MAX_PARTNERS} allowed",
                partners.len()
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, p) in partners.iter().enumerate() {
            if let Some(first) = seen.insert(p.name.to_lowercase(), i) {
                return Err(format!(
                    "partners[{i}]: the name {:?} is already used by partners[{first}] \
                     (names are compared ignoring case)",
                    p.name
                ));
            }
        }
        Ok(Self(partners))
    }
}

impl TryFrom<RawPartner> for Partner {
    type Error = String;
    fn try_from(raw: RawPartner) -> Result<Self, String> {
        let blocks = raw.matches.into_vec();
        if blocks.is_empty() {
            return Err("match: give at least one match block".to_owned());
        }
        let issuer = match raw.issuer.map(OneOrMany::into_vec) {
            None => Vec::new(),
            Some(list) if list.is_empty() => {
                return Err("issuer: give at least one CA, or leave issuer out".to_owned());
            }
            Some(list) => list,
        };
        for (j, block) in blocks.iter().enumerate() {
            let has_issuer = block
                .issuer
                .as_ref()
                .map_or(!issuer.is_empty(), |i| !i.is_empty());
            if block.has_name_field() && !has_issuer {
                return Err(format!(
                    "match[{j}]: a commonName, dnsName, uri, email or serialNumber is vouched \
                     for by a CA, so the partner needs an issuer (the SHA-256 fingerprint or \
                     subject of a CA in CLIENT_CERT_CA_PATH); only partners matched by \
                     thumbprintSha256, thumbprintSha1 or spkiSha256 alone may omit it"
                ));
            }
        }
        let functions = raw.functions;
        if functions.is_empty() {
            return Err(
                "functions: list the functions this partner may call, or [\"*\"] for all"
                    .to_owned(),
            );
        }
        let functions = if functions.iter().any(|f| f.0 == "*") {
            if functions.len() > 1 {
                return Err(
                    "functions: \"*\" already allows every function; list it alone".to_owned(),
                );
            }
            Functions::All
        } else {
            let mut names: Vec<String> = functions.into_iter().map(|f| f.0).collect();
            names.sort();
            names.dedup();
            Functions::Only(names)
        };
        Ok(Self {
            name: raw.name.0,
            issuer,
            blocks,
            functions,
            not_after_warning_days: raw.not_after_warning_days.map(|d| d.0),
        })
    }
}

impl TryFrom<RawBlock> for MatchBlock {
    type Error = String;
    fn try_from(raw: RawBlock) -> Result<Self, String> {
        let issuer = raw.issuer.map(OneOrMany::into_vec);
        if issuer.as_ref().is_some_and(Vec::is_empty) {
            return Err("issuer: give at least one CA, or leave issuer out".to_owned());
        }
        let block = Self {
            common_name: raw.common_name.map(|v| v.0),
            dns_name: raw.dns_name.map(|v| v.0),
            uri: raw.uri.map(|v| v.0),
            email: raw.email.map(|v| v.0),
            serial_number: raw.serial_number.map(|s| s.0),
            spki_sha256: raw.spki_sha256.map(|h| h.0),
            thumbprint_sha256: raw.thumbprint_sha256.map(|h| h.0),
            thumbprint_sha1: raw.thumbprint_sha1.map(|h| h.0),
            issuer,
        };
        let any_pin = block.spki_sha256.is_some()
            || block.thumbprint_sha256.is_some()
            || block.thumbprint_sha1.is_some();
        if !block.has_name_field() && !any_pin {
            return Err(
                "a match block needs at least one of commonName, dnsName, uri, email, \
                        serialNumber, spkiSha256, thumbprintSha256, thumbprintSha1"
                    .to_owned(),
            );
        }
        Ok(block)
    }
}

// === leaf values ===

/// A partner name: 1–128 characters, no control characters, no surrounding spaces.
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.chars().count() > MAX_NAME_CHARS {
            return Err(de::Error::custom(format!(
                "a partner name has 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if s.trim() != s || s.chars().any(char::is_control) {
            return Err(de::Error::custom(
                "a partner name has no control characters and no leading or trailing spaces",
            ));
        }
        Ok(Self(s))
    }
}

/// A name, URI or email to match: non-empty, no control characters.
struct Value(String);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.chars().count() > MAX_VALUE_CHARS {
            return Err(de::Error::custom(format!(
                "a match value has 1 to {MAX_VALUE_CHARS} characters"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(de::Error::custom("a match value has no control characters"));
        }
        Ok(Self(s))
    }
}

/// A function name (`cert-info`) or `*`.
struct FunctionName(String);

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s == "*"
            || (!s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if !ok {
            return Err(de::Error::custom(format!(
                "{s:?} is not a function name (letters, digits, '-' and '_') or \"*\""
            )));
        }
        Ok(Self(s))
    }
}

struct WarningDays(u32);

impl<'de> Deserialize<'de> for WarningDays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(n) if n <= MAX_WARNING_DAYS => Ok(Self(n)),
            _ => Err(de::Error::custom(format!(
                "notAfterWarningDays is 0 to {MAX_WARNING_DAYS}"
            ))),
        }
    }
}

/// Hex digits as `ALLOWED_CLIENT_CERT_THUMBPRINTS` takes them: any case, `:`, spaces and
/// invisible marks ignored. `None` when a character is not a hex digit.
pub fn hex_digits(value: &str) -> Result<Vec<u8>, char> {
    let mut digits = Vec::with_capacity(64);
    for c in value.chars() {
        if c == ':' || c.is_whitespace() || is_invisible(c) {
            continue;
        }
        match c.to_digit(16) {
            Some(d) => digits.push(d as u8),
            None => return Err(c),
        }
    }
    Ok(digits)
}

/// Bytes from hex digits; an odd count is read with a leading zero.
fn bytes_of(digits: &[u8]) -> Vec<u8> {
    let mut padded = Vec::with_capacity(digits.len() + 1);
    if digits.len() % 2 == 1 {
        padded.push(0);
    }
    padded.extend_from_slice(digits);
    padded.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Zero-width and direction marks that survive copy and paste from certificate viewers
/// (the same set `ALLOWED_CLIENT_CERT_THUMBPRINTS` ignores).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// Exactly `N` bytes of hex.
struct Hex<const N: usize>([u8; N]);

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits =
            hex_digits(&s).map_err(|c| de::Error::custom(format!("{c:?} is not a hex digit")))?;
        if digits.len() != 2 * N {
            return Err(de::Error::custom(format!(
                "{} hex digits; expected {} (SHA-{})",
                digits.len(),
                2 * N,
                if N == 20 { 1 } else { 256 }
            )));
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes_of(&digits));
        Ok(Self(out))
    }
}

/// A serial number in hex, as `cert-info` shows it; leading zero bytes are not significant.
struct Serial(Vec<u8>);

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits =
            hex_digits(&s).map_err(|c| de::Error::custom(format!("{c:?} is not a hex digit")))?;
        if digits.is_empty() || digits.len() > 64 {
            return Err(de::Error::custom("a serial number has 1 to 64 hex digits"));
        }
        let bytes = bytes_of(&digits);
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Ok(Self(bytes[start..].to_vec()))
    }
}

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(de::Error::custom)
    }
}

impl Issuer {
    /// A SHA-256 fingerprint (64 hex digits, separators ignored) or a subject (`CN=…`).
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(digits) = hex_digits(s) {
            match digits.len() {
                64 => {
                    let mut out = [0u8; 32];
                    out.copy_from_slice(&bytes_of(&digits));
                    return Ok(Self::Sha256(out));
                }
                40 => {
                    return Err(
                        "an issuer is named by its SHA-256 fingerprint (64 hex digits), not SHA-1"
                            .to_owned(),
                    )
                }
                _ => {}
            }
        }
        let t = s.trim();
        if t.contains('=') && !t.chars().any(char::is_control) && t.len() <= MAX_VALUE_CHARS {
            return Ok(Self::Subject(t.to_owned()));
        }
        Err(format!(
            "{s:?} is neither a SHA-256 fingerprint (64 hex digits) nor a subject such as \
             \"CN=Contoso Issuing CA\""
        ))
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256(b) => {
                for x in b {
                    write!(f, "{x:02X}")?;
                }
                Ok(())
            }
            Self::Subject(s) => f.write_str(s),
        }
    }
}

/// One value or a list of them (`"issuer": "…"` or `"issuer": ["…", "…"]`), keeping the
/// inner value's own errors and positions.
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(s)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> DocumentError {
        match parse(text) {
            Ok(d) => panic!("accepted: {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn an_error_names_the_line_the_column_and_the_json_path() {
        let text = "{\"partners\": [\n  {\"name\": \"a\", \"functions\": [\"*\"],\n   \"match\": {\"thumbprintSha256\": \"abc\"}}\n]}";
        let e = err(text);
        assert_eq!(e.path, "$.partners[0].match.thumbprintSha256");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("3 hex digits"), "{e}");
        assert!(e.to_string().starts_with("line 3, column "), "{e}");
    }

    #[test]
    fn a_list_of_match_blocks_reports_the_index_of_the_bad_one() {
        let text = r#"{"partners": [{"name": "a", "functions": ["*"], "match": [
            {"thumbprintSha1": "00112233445566778899aabbccddeeff00112233"},
            {"dnsName": "x.example", "colour": "red"}]}]}"#;
        let e = err(text);
        assert_eq!(e.path, "$.partners[0].match[1].colour");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn names_need_an_issuer_but_pins_do_not() {
        let e = err(
            r#"{"partners": [{"name": "a", "functions": ["*"], "match": {"commonName": "a"}}]}"#,
        );
        assert_eq!(e.path, "$.partners[0]");
        assert!(e.message.contains("needs an issuer"), "{e}");
        let ok = parse(&format!(
            r#"{{"partners": [{{"name": "a", "functions": ["cert-info"], "match": {{"spkiSha256": "{}"}}}}]}}"#,
            "AB:".repeat(32)
        ))
        .unwrap();
        assert!(ok.partners.0[0].issuer.is_empty());
    }

    #[test]
    fn duplicate_names_are_refused_ignoring_case() {
        let p = |n: &str| {
            format!(
                r#"{{"name": "{n}", "functions": ["*"], "match": {{"thumbprintSha256": "{}"}}}}"#,
                "0".repeat(64)
            )
        };
        let e = err(&format!(
            r#"{{"partners": [{}, {}]}}"#,
            p("Fabrikam"),
            p("fabrikam")
        ));
        assert_eq!(e.path, "$.partners");
        assert!(
            e.message.contains("partners[1]") && e.message.contains("partners[0]"),
            "{e}"
        );
    }

    #[test]
    fn hex_is_normalised_and_serials_lose_leading_zeros() {
        let d = parse(&format!(
            r#"{{"partners": [{{"name": "a", "functions": ["*"], "issuer": "CN=CA",
                 "match": {{"serialNumber": "00:0a:BC", "thumbprintSha1": "{}"}}}}]}}"#,
            "\u{200E}Ab ".repeat(20)
        ))
        .unwrap();
        let b = &d.partners.0[0].blocks[0];
        assert_eq!(b.serial_number.as_deref(), Some(&[0x0a, 0xbc][..]));
        assert_eq!(b.thumbprint_sha1, Some([0xab; 20]));
    }

    #[test]
    fn issuers_are_fingerprints_or_subjects_never_sha1() {
        assert_eq!(
            Issuer::parse(&"cd".repeat(32)),
            Ok(Issuer::Sha256([0xcd; 32]))
        );
        assert_eq!(
            Issuer::parse(" CN=Contoso CA "),
            Ok(Issuer::Subject("CN=Contoso CA".to_owned()))
        );
        assert!(Issuer::parse(&"cd".repeat(20))
            .unwrap_err()
            .contains("SHA-1"));
        assert!(Issuer::parse("contoso").is_err());
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        assert!(parse("\u{FEFF}{\"partners\": []}").is_ok());
    }

    #[test]
    fn trailing_text_and_syntax_errors_have_positions() {
        let e = err("{\"partners\": []} x");
        assert_eq!((e.line, e.column), (1, 18));
        let e = err("{\"partners\": [\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn star_must_stand_alone_and_functions_cannot_be_empty() {
        let p = |f: &str| {
            format!(
                r#"{{"partners": [{{"name": "a", "functions": {f}, "match": {{"thumbprintSha256": "{}"}}}}]}}"#,
                "0".repeat(64)
            )
        };
        assert!(err(&p(r#"["*", "cert-info"]"#)).message.contains("alone"));
        assert!(err(&p("[]")).message.contains("functions"));
        assert!(err(&p(r#"["cert info"]"#)).path.ends_with("functions[0]"));
        assert_eq!(
            parse(&p(r#"["outbound-mtls", "cert-info"]"#))
                .unwrap()
                .partners
                .0[0]
                .functions,
            Functions::Only(vec!["cert-info".into(), "outbound-mtls".into()])
        );
    }
}

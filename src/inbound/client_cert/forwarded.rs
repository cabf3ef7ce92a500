//! The certificate header formats of every Azure front end, decoded strictly.
//!
//! Owns: the wire formats ([`HeaderFormat`]) in which a front end forwards the caller's
//! certificate, turning the header values of one request into the leaf's DER and the
//! forwarded chain ([`Forwarded`]), and the matching encoders the local tools and tests
//! use. Each format yields exactly one leaf or a [`CertError::Malformed`]:
//! - `arr`: App Service's `X-ARR-ClientCert`, base64 DER (PEM tolerated), decoded by
//!   [`super::header`] exactly as before; there is no chain;
//! - `xfcc`: Envoy's `X-Forwarded-Client-Cert` (Azure Container Apps). One element only
//!   (a second one may be the caller's own, see README "Behind Azure Container Apps"),
//!   split by Envoy's grammar: `;`-separated `key=value` pairs, keys case-insensitive,
//!   values optionally double-quoted (a quoted value may hold `,` `;` `=` and `\"`). `Cert`
//!   (URL-encoded PEM, one certificate) is the leaf; `Chain` (URL-encoded PEM) holds
//!   untrusted intermediates, the leaf repeated or not; `Hash`, when present, must be the
//!   leaf's SHA-256;
//! - `rfc9440`: `Client-Cert` is one structured-field byte sequence (`:base64 DER:`);
//!   `Client-Cert-Chain` a list of them (several header lines are one list);
//! - `pem-urlencoded`: one URL-encoded PEM certificate (Application Gateway's
//!   `{var_client_certificate}`, nginx's `$ssl_client_escaped_cert`).
//!
//! Every header value is limited to [`MAX_HEADER_BYTES`], and a forwarded chain to
//! [`MAX_CHAIN_CERTS`] certificates. Chain certificates are only ever *untrusted*
//! intermediates: nothing here or in the caller makes them trust anchors.
//! Must not: parse certificates beyond finding their DER (that is `validate`), or do I/O.

use super::digest::{hex_upper, sha256};
use super::error::{CertError, HeaderError, Malformed};
use super::header::{self, MAX_HEADER_BYTES};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;

/// At most this many certificates in a forwarded chain (after dropping a repeated leaf).
/// Real chains have one to three intermediates; more is refused before any of them is
/// parsed, so a request cannot buy work with a long chain.
pub const MAX_CHAIN_CERTS: usize = 8;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// How the front end forwards the certificate (`CLIENT_CERT_HEADER_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum HeaderFormat {
    /// App Service: base64 DER in `X-ARR-ClientCert`.
    #[default]
    Arr,
    /// Envoy / Azure Container Apps: `X-Forwarded-Client-Cert`.
    Xfcc,
    /// RFC 9440: `Client-Cert` and `Client-Cert-Chain`.
    Rfc9440,
    /// URL-encoded PEM in a header a rewrite rule names (Application Gateway, nginx).
    PemUrlencoded,
}

impl HeaderFormat {
    /// Every format, in the order the settings list them.
    pub const ALL: [Self; 4] = [Self::Arr, Self::Xfcc, Self::Rfc9440, Self::PemUrlencoded];

    /// The setting's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arr => "arr",
            Self::Xfcc => "xfcc",
            Self::Rfc9440 => "rfc9440",
            Self::PemUrlencoded => "pem-urlencoded",
        }
    }

    /// Parses the setting's spelling (any case).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(value.trim()))
    }

    /// The header read by default; `None` for `pem-urlencoded`, whose header a rewrite rule
    /// names.
    pub fn default_header(self) -> Option<&'static str> {
        match self {
            Self::Arr => Some(header::HEADER_NAME),
            Self::Xfcc => Some("X-Forwarded-Client-Cert"),
            Self::Rfc9440 => Some("Client-Cert"),
            Self::PemUrlencoded => None,
        }
    }

    /// The chain header read by default (`rfc9440` only).
    pub fn default_chain_header(self) -> Option<&'static str> {
        match self {
            Self::Rfc9440 => Some("Client-Cert-Chain"),
            _ => None,
        }
    }
}

impl fmt::Display for HeaderFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a front end forwarded: the leaf and the untrusted certificates sent with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarded {
    pub leaf: Vec<u8>,
    /// Untrusted intermediates, as forwarded (the leaf itself left out), at most
    /// [`MAX_CHAIN_CERTS`].
    pub chain: Vec<Vec<u8>>,
}

fn malformed(e: HeaderError) -> CertError {
    CertError::Malformed(Malformed::Header(e))
}

/// Decodes the certificate header values (`cert`) and, for `rfc9440`, the chain header
/// values (`chain`; ignored by the other formats) of one request.
///
/// No value, or only whitespace, is [`CertError::Missing`]; anything else that is not
/// exactly one certificate in `format` is [`CertError::Malformed`].
pub fn decode<V: AsRef<[u8]>>(
    format: HeaderFormat,
    cert: &[V],
    chain: &[V],
) -> Result<Forwarded, CertError> {
    match format {
        HeaderFormat::Arr => Ok(Forwarded {
            leaf: header::decode(cert)?,
            chain: Vec::new(),
        }),
        HeaderFormat::PemUrlencoded => {
            let value = one_value(cert, "certificate")?;
            let text = percent_decode(value)?;
            let mut certs = pem_certificates(&text)?;
            if certs.len() != 1 {
                return Err(malformed(HeaderError::PemCount { found: certs.len() }));
            }
            Ok(Forwarded {
                leaf: certs.remove(0),
                chain: Vec::new(),
            })
        }
        HeaderFormat::Xfcc => decode_xfcc(one_value(cert, "X-Forwarded-Client-Cert")?),
        HeaderFormat::Rfc9440 => {
            let value = one_value(cert, "Client-Cert")?;
            let leaf = byte_sequence(value, "Client-Cert")?;
            let mut list = Vec::new();
            for v in chain {
                let v = v.as_ref();
                check_size(v, "Client-Cert-Chain")?;
                if !v.trim_ascii().is_empty() {
                    list.extend(split_list(v)?);
                }
            }
            if list.len() > MAX_CHAIN_CERTS + 1 {
                return Err(malformed(HeaderError::ChainTooLong {
                    count: list.len(),
                    max: MAX_CHAIN_CERTS,
                }));
            }
            let chain = list
                .into_iter()
                .map(|m| byte_sequence(m, "Client-Cert-Chain"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Forwarded {
                chain: without_leaf(&leaf, chain)?,
                leaf,
            })
        }
    }
}

/// The only value of a header (blank or absent is `missing`), within the size limit.
fn one_value<'a, V: AsRef<[u8]>>(
    values: &'a [V],
    header: &'static str,
) -> Result<&'a [u8], CertError> {
    let value = match values {
        [] => return Err(CertError::Missing),
        [one] => one.as_ref(),
        many => {
            return Err(malformed(HeaderError::Repeated {
                header,
                count: many.len(),
            }))
        }
    };
    check_size(value, header)?;
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(CertError::Missing);
    }
    Ok(value)
}

fn check_size(value: &[u8], header: &'static str) -> Result<(), CertError> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(malformed(HeaderError::TooLarge {
            header,
            len: value.len(),
            max: MAX_HEADER_BYTES,
        }));
    }
    Ok(())
}

/// The chain without copies of the leaf, bounded.
fn without_leaf(leaf: &[u8], chain: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CertError> {
    let chain: Vec<Vec<u8>> = chain.into_iter().filter(|c| c != leaf).collect();
    if chain.len() > MAX_CHAIN_CERTS {
        return Err(malformed(HeaderError::ChainTooLong {
            count: chain.len(),
            max: MAX_CHAIN_CERTS,
        }));
    }
    Ok(chain)
}

/// Strict `%XX` decoding: every `%` followed by two hex digits; `+` stays `+` (base64 uses
/// it); the result must be UTF-8 text.
fn percent_decode(value: &[u8]) -> Result<String, CertError> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'%' {
            let hex = |at: usize| value.get(at).and_then(|c| (*c as char).to_digit(16));
            match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(malformed(HeaderError::BadPercentEncoding { at: i })),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| malformed(HeaderError::NotText))
}

/// Every CERTIFICATE block of a PEM text, as DER; anything but blocks and whitespace
/// between them is refused.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(malformed(HeaderError::PemCount { found: 0 }));
    }
    while !rest.is_empty() {
        let Some(after_begin) = rest.strip_prefix(PEM_BEGIN) else {
            return Err(malformed(HeaderError::BadPem));
        };
        let Some(end) = after_begin.find(PEM_END) else {
            return Err(malformed(HeaderError::BadPem));
        };
        let body = &after_begin[..end];
        if body.contains('-') {
            return Err(malformed(HeaderError::BadPem));
        }
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(compact.as_bytes()).map_err(|e| {
            malformed(HeaderError::PemNotBase64 {
                detail: e.to_string(),
            })
        })?;
        if der.is_empty() {
            return Err(malformed(HeaderError::BadPem));
        }
        out.push(der);
        if out.len() > MAX_CHAIN_CERTS + 1 {
            return Err(malformed(HeaderError::ChainTooLong {
                count: out.len(),
                max: MAX_CHAIN_CERTS,
            }));
        }
        rest = after_begin[end + PEM_END.len()..].trim_start();
    }
    Ok(out)
}

/// One RFC 8941 byte sequence, `:base64:`, nothing else (no parameters).
fn byte_sequence(value: &[u8], header: &'static str) -> Result<Vec<u8>, CertError> {
    let bad = |detail: &str| {
        malformed(HeaderError::NotByteSequence {
            header,
            detail: detail.to_owned(),
        })
    };
    let v = value.trim_ascii();
    let inner = v
        .strip_prefix(b":")
        .and_then(|r| r.strip_suffix(b":"))
        .ok_or_else(|| bad("not enclosed in ':'"))?;
    if inner.is_empty() {
        return Err(bad("empty"));
    }
    if !inner
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(bad("a character outside base64"));
    }
    let der = BASE64_SF.decode(inner).map_err(|e| bad(&e.to_string()))?;
    Ok(der)
}

/// Base64 as RFC 8941 byte sequences use it; parsers may accept missing padding.
const BASE64_SF: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The members of a structured-field list (`a, b, c`); byte sequences hold no commas.
fn split_list(value: &[u8]) -> Result<Vec<&[u8]>, CertError> {
    let members: Vec<&[u8]> = value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    if members.iter().any(|m| m.is_empty()) {
        return Err(malformed(HeaderError::NotByteSequence {
            header: "Client-Cert-Chain",
            detail: "an empty list member".to_owned(),
        }));
    }
    Ok(members)
}

/// Splits `value` at `sep` outside double quotes (a backslash escapes the next character
/// inside quotes).
fn split_unquoted(value: &str, sep: char) -> Result<Vec<&str>, CertError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&value[start..i]);
            start = i + 1;
        }
    }
    if quoted || escaped {
        return Err(malformed(HeaderError::UnterminatedQuote));
    }
    parts.push(&value[start..]);
    Ok(parts)
}

/// An XFCC value without its quotes and escapes. Quotes may only enclose the whole value.
fn unquote(value: &str) -> Result<String, CertError> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains('"') {
            return Err(malformed(HeaderError::UnterminatedQuote));
        }
        return Ok(value.to_owned());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(malformed(HeaderError::UnterminatedQuote));
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return Err(malformed(HeaderError::UnterminatedQuote)),
            },
            '"' => return Err(malformed(HeaderError::UnterminatedQuote)),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn decode_xfcc(value: &[u8]) -> Result<Forwarded, CertError> {
    let text = std::str::from_utf8(value).map_err(|_| malformed(HeaderError::NotText))?;
    let elements = split_unquoted(text, ',')?;
    if elements.len() != 1 {
        return Err(malformed(HeaderError::XfccElements {
            count: elements.len(),
        }));
    }
    let (mut cert, mut chain, mut hash) = (None, None, None);
    for pair in split_unquoted(elements[0], ';')? {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(malformed(HeaderError::XfccPair {
                pair: bounded(pair),
            }));
        };
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "cert" => Some((&mut cert, "Cert")),
            "chain" => Some((&mut chain, "Chain")),
            "hash" => Some((&mut hash, "Hash")),
            // By, Subject, URI, DNS and future keys: identity comes from the certificate
            // itself, never from the proxy's text about it.
            _ => None,
        };
        let value = unquote(raw.trim())?;
        if let Some((slot, name)) = slot {
            if slot.is_some() {
                return Err(malformed(HeaderError::XfccDuplicate { key: name }));
            }
            *slot = Some(value);
        }
    }
    let cert = cert.ok_or_else(|| malformed(HeaderError::XfccNoCert))?;
    let mut certs = pem_certificates(&percent_decode(cert.as_bytes())?)?;
    if certs.len() != 1 {
        return Err(malformed(HeaderError::PemCount { found: certs.len() }));
    }
    let leaf = certs.remove(0);
    if let Some(hash) = hash {
        let digest = parse_hex32(&hash).ok_or_else(|| malformed(HeaderError::XfccBadHash))?;
        if digest != sha256(&leaf) {
            return Err(malformed(HeaderError::XfccHashMismatch));
        }
    }
    let chain = match chain {
        None => Vec::new(),
        Some(c) if c.is_empty() => Vec::new(),
        Some(c) => pem_certificates(&percent_decode(c.as_bytes())?)?,
    };
    Ok(Forwarded {
        chain: without_leaf(&leaf, chain)?,
        leaf,
    })
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let t = text.as_bytes();
    if t.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in t.chunks(2).enumerate() {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out[i] = (h * 16 + l) as u8;
    }
    Some(out)
}

fn bounded(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

// === encoders (what each front end sends) ===

/// PEM of one DER certificate (64-character lines).
pub fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = String::with_capacity(b64.len() + 80);
    s.push_str(PEM_BEGIN);
    s.push('\n');
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(PEM_END);
    s.push('\n');
    s
}

/// URL-encoding as Envoy and nginx apply it to PEM: everything but unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
pub fn url_encode(text: &str) -> String {
    let mut s = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The header values a front end in `format` sends for `leaf` and `chain` (intermediates,
/// nearest first): the certificate header's value, and for `rfc9440` the chain header's
/// value when there is a chain. `arr` and `pem-urlencoded` carry no chain.
pub fn encode(format: HeaderFormat, leaf: &[u8], chain: &[Vec<u8>]) -> (String, Option<String>) {
    match format {
        HeaderFormat::Arr => (STANDARD.encode(leaf), None),
        HeaderFormat::PemUrlencoded => (url_encode(&pem(leaf)), None),
        HeaderFormat::Xfcc => {
            let hash = hex_upper(&sha256(leaf)).to_ascii_lowercase();
            let mut value = format!("Hash={hash};Cert=\"{}\"", url_encode(&pem(leaf)));
            if !chain.is_empty() {
                // Envoy's Chain is the whole chain, leaf first.
                let all: String = std::iter::once(leaf)
                    .chain(chain.iter().map(Vec::as_slice))
                    .map(pem)
                    .collect();
                value.push_str(&format!(";Chain=\"{}\"", url_encode(&all)));
            }
            (value, None)
        }
        HeaderFormat::Rfc9440 => {
            let seq = |der: &[u8]| format!(":{}:", STANDARD.encode(der));
            let chain = (!chain.is_empty())
                .then(|| chain.iter().map(|c| seq(c)).collect::<Vec<_>>().join(", "));
            (seq(leaf), chain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Forwarded, CertError>) -> HeaderError {
        match r {
            Err(CertError::Malformed(Malformed::Header(e))) => e,
            other => panic!("expected a header error, got {other:?}"),
        }
    }

    const LEAF: &[u8] = b"leaf-der-bytes";
    const MID: &[u8] = b"intermediate-der";

    #[test]
    fn every_format_round_trips_the_leaf_and_the_chain_it_can_carry() {
        let chain = vec![MID.to_vec()];
        for format in HeaderFormat::ALL {
            let (cert, chain_value) = encode(format, LEAF, &chain);
            let chain_values: Vec<String> = chain_value.into_iter().collect();
            let got = decode(format, &[cert], &chain_values).unwrap();
            assert_eq!(got.leaf, LEAF, "{format}");
            let carries = matches!(format, HeaderFormat::Xfcc | HeaderFormat::Rfc9440);
            assert_eq!(got.chain.is_empty(), !carries, "{format}");
        }
    }

    #[test]
    fn formats_parse_case_insensitively_and_unknown_ones_do_not() {
        assert_eq!(HeaderFormat::parse("XFCC"), Some(HeaderFormat::Xfcc));
        assert_eq!(
            HeaderFormat::parse("pem-urlencoded"),
            Some(HeaderFormat::PemUrlencoded)
        );
        assert_eq!(HeaderFormat::parse("envoy"), None);
    }

    #[test]
    fn xfcc_quoted_values_may_hold_separators_and_other_keys_are_ignored() {
        let (cert, _) = encode(HeaderFormat::Xfcc, LEAF, &[]);
        let v = format!(
            "By=spiffe://x;{cert};Subject=\"/CN=a,b;c=d \\\"q\\\"\";URI=spiffe://a;DNS=x;DNS=y"
        );
        assert_eq!(decode(HeaderFormat::Xfcc, &[v], &[]).unwrap().leaf, LEAF);
    }

    #[test]
    fn xfcc_subject_with_a_semicolon_cannot_inject_a_cert() {
        // tgies/client-certificate-auth#229: the injected Cert is inside the quotes.
        let (cert, _) = encode(HeaderFormat::Xfcc, LEAF, &[]);
        let evil = encode(HeaderFormat::Xfcc, b"evil", &[]).0;
        let v = format!("{cert};Subject=\"CN=x;{}\"", evil.replace('"', "\\\""));
        assert_eq!(decode(HeaderFormat::Xfcc, &[v], &[]).unwrap().leaf, LEAF);
    }

    #[test]
    fn xfcc_refuses_two_elements_duplicates_bad_quotes_and_a_wrong_hash() {
        let (cert, _) = encode(HeaderFormat::Xfcc, LEAF, &[]);
        let two = format!("{cert},{cert}");
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &[two], &[])),
            HeaderError::XfccElements { count: 2 }
        );
        let dup = format!("{cert};Cert=x");
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &[dup], &[])),
            HeaderError::XfccDuplicate { key: "Cert" }
        );
        let open = format!("{cert};Subject=\"CN=x");
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &[open], &[])),
            HeaderError::UnterminatedQuote
        );
        let wrong = format!(
            "Hash={};Cert=\"{}\"",
            "0".repeat(64),
            url_encode(&pem(LEAF))
        );
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &[wrong], &[])),
            HeaderError::XfccHashMismatch
        );
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &["Hash=ab;By=x"], &[])),
            HeaderError::XfccNoCert
        );
        assert_eq!(
            err(decode(HeaderFormat::Xfcc, &["Cert"], &[])),
            HeaderError::XfccPair {
                pair: "Cert".to_owned()
            }
        );
    }

    #[test]
    fn xfcc_chain_drops_the_repeated_leaf() {
        let (cert, _) = encode(HeaderFormat::Xfcc, LEAF, &[MID.to_vec()]);
        let got = decode(HeaderFormat::Xfcc, &[cert], &[]).unwrap();
        assert_eq!(got.chain, vec![MID.to_vec()]);
    }

    #[test]
    fn percent_encoding_must_be_complete_and_hex() {
        for bad in ["%", "%4", "%zz", "abc%2"] {
            assert!(matches!(
                err(decode(HeaderFormat::PemUrlencoded, &[bad], &[])),
                HeaderError::BadPercentEncoding { .. }
            ));
        }
    }

    #[test]
    fn pem_urlencoded_takes_exactly_one_certificate() {
        let two = url_encode(&format!("{}{}", pem(LEAF), pem(MID)));
        assert_eq!(
            err(decode(HeaderFormat::PemUrlencoded, &[two], &[])),
            HeaderError::PemCount { found: 2 }
        );
        let tail = url_encode(&format!("{}junk", pem(LEAF)));
        assert_eq!(
            err(decode(HeaderFormat::PemUrlencoded, &[tail], &[])),
            HeaderError::BadPem
        );
        // nginx-style: newlines escaped, '+' of base64 escaped too.
        let ok = url_encode(&pem(LEAF));
        assert!(ok.contains("%0A"));
        assert_eq!(
            decode(HeaderFormat::PemUrlencoded, &[ok], &[])
                .unwrap()
                .leaf,
            LEAF
        );
    }

    #[test]
    fn rfc9440_values_must_be_byte_sequences_without_parameters() {
        for bad in ["QUJD", ":QUJD", ":QU*D:", "::", ":QUJD:;a=1", "\"QUJD\""] {
            assert!(
                matches!(
                    err(decode(HeaderFormat::Rfc9440, &[bad], &[])),
                    HeaderError::NotByteSequence { .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err(decode(
                HeaderFormat::Rfc9440,
                &[":QUJD:"],
                &[":QUJD:, , :QUJD:"]
            )),
            HeaderError::NotByteSequence { .. }
        ));
        // Several chain header lines are one list.
        let got = decode(HeaderFormat::Rfc9440, &[":QUJD:"], &[":REVG:", ":R0hJ:"]).unwrap();
        assert_eq!(got.chain, vec![b"DEF".to_vec(), b"GHI".to_vec()]);
    }

    #[test]
    fn a_chain_longer_than_the_limit_is_refused_before_decoding() {
        let members = vec![":QUJD:"; 50].join(",");
        assert!(matches!(
            err(decode(
                HeaderFormat::Rfc9440,
                &[":REVG:"],
                &[members.as_str()]
            )),
            HeaderError::ChainTooLong { count: 50, .. }
        ));
        let chain: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 4]).collect();
        let (cert, _) = encode(HeaderFormat::Xfcc, LEAF, &chain);
        assert!(matches!(
            err(decode(HeaderFormat::Xfcc, &[cert], &[])),
            HeaderError::ChainTooLong { .. }
        ));
    }

    #[test]
    fn absent_or_blank_is_missing_and_repeated_or_oversized_is_malformed() {
        for format in HeaderFormat::ALL {
            assert_eq!(
                decode::<&str>(format, &[], &[]),
                Err(CertError::Missing),
                "{format}"
            );
            assert_eq!(
                decode(format, &["  "], &[]),
                Err(CertError::Missing),
                "{format}"
            );
            assert!(
                matches!(
                    decode(format, &["a", "b"], &[]),
                    Err(CertError::Malformed(_))
                ),
                "{format}"
            );
            let big = "A".repeat(MAX_HEADER_BYTES + 1);
            assert!(
                matches!(
                    decode(format, &[big.as_str()], &[]),
                    Err(CertError::Malformed(_))
                ),
                "{format}"
            );
        }
        let big = ":QUJD:,".repeat(MAX_HEADER_BYTES / 7 + 1);
        assert!(matches!(
            err(decode(HeaderFormat::Rfc9440, &[":QUJD:"], &[big.as_str()])),
            HeaderError::TooLarge { .. }
        ));
    }
}

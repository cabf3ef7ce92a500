//! Decoding the `X-ARR-ClientCert` header into DER bytes.
//!
//! Owns: the header's wire format. App Service sends base64 of the DER certificate on one
//! line; we also accept whitespace or line breaks inside the base64 and a full PEM block,
//! because other front ends and hand-made test requests send those.
//! Must not: parse the certificate (that is `validate`), or do I/O.

use super::error::{CertError, Malformed};
use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;

/// The header name, as App Service spells it. Lookups are case-insensitive.
pub const HEADER_NAME: &str = "X-ARR-ClientCert";

/// The largest header value we look at. A real client certificate is 1-3 KiB of base64.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// Standard alphabet; padding optional (some proxies strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Turns every value of the header in one request into the certificate's DER bytes.
///
/// No value, or only whitespace, is [`CertError::Missing`]; more than one value, an
/// oversized value, or anything but base64/PEM is [`CertError::Malformed`].
pub fn decode<V: AsRef<[u8]>>(values: &[V]) -> Result<Vec<u8>, CertError> {
    let value = match values {
        [] => return Err(CertError::Missing),
        [one] => one.as_ref(),
        many => {
            // Several values where all but one are blank is still ambiguous: reject.
            return Err(Malformed::MultipleValues { count: many.len() }.into());
        }
    };
    if value.len() > MAX_HEADER_BYTES {
        return Err(Malformed::TooLarge {
            len: value.len(),
            max: MAX_HEADER_BYTES,
        }
        .into());
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(CertError::Missing);
    }
    let body = if value.starts_with(PEM_BEGIN) {
        pem_body(value)?
    } else {
        value
    };
    // App Service sends one unbroken line: only copy when there is whitespace to drop.
    let compact: std::borrow::Cow<'_, [u8]> = if body.iter().any(u8::is_ascii_whitespace) {
        body.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into()
    } else {
        body.into()
    };
    if compact.is_empty() {
        return Err(Malformed::NotBase64 {
            detail: "empty".to_owned(),
        }
        .into());
    }
    BASE64.decode(&compact).map_err(|e| {
        Malformed::NotBase64 {
            detail: e.to_string(),
        }
        .into()
    })
}

/// The base64 between one BEGIN/END CERTIFICATE pair, with nothing after it.
fn pem_body(value: &[u8]) -> Result<&[u8], CertError> {
    let rest = &value[PEM_BEGIN.len()..];
    let end = find(rest, PEM_END).ok_or(Malformed::BadPem)?;
    let (body, tail) = (&rest[..end], &rest[end + PEM_END.len()..]);
    if !tail.trim_ascii().is_empty() || find(body, b"-----").is_some() {
        return Err(Malformed::BadPem.into());
    }
    Ok(body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(r: Result<Vec<u8>, CertError>) -> Malformed {
        match r {
            Err(CertError::Malformed(m)) => m,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn no_value_or_blank_value_is_missing() {
        assert_eq!(decode::<&[u8]>(&[]), Err(CertError::Missing));
        assert_eq!(decode(&[" \t "]), Err(CertError::Missing));
    }

    #[test]
    fn two_values_are_malformed_even_when_one_is_blank() {
        assert_eq!(
            malformed(decode(&["QUJD", ""])),
            Malformed::MultipleValues { count: 2 }
        );
    }

    #[test]
    fn base64_with_line_breaks_and_no_padding_decodes() {
        assert_eq!(decode(&["QUJD\r\nREVG\n R0g"]).unwrap(), b"ABCDEFGH");
    }

    #[test]
    fn full_pem_block_decodes_and_trailing_garbage_does_not() {
        let pem = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
        assert_eq!(decode(&[pem]).unwrap(), b"ABC");
        let two = format!("{pem}{pem}");
        assert_eq!(malformed(decode(&[two.as_str()])), Malformed::BadPem);
        let open = "-----BEGIN CERTIFICATE-----\nQUJD\n";
        assert_eq!(malformed(decode(&[open])), Malformed::BadPem);
    }

    #[test]
    fn oversized_value_is_rejected_before_decoding() {
        let big = "A".repeat(MAX_HEADER_BYTES + 1);
        assert!(matches!(
            malformed(decode(&[big.as_str()])),
            Malformed::TooLarge { .. }
        ));
    }

    #[test]
    fn non_base64_bytes_are_malformed() {
        assert!(matches!(
            malformed(decode(&[&b"\xff\xfe%%"[..]])),
            Malformed::NotBase64 { .. }
        ));
    }
}

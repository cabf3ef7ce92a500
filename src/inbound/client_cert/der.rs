//! Strict DER framing: every length in its minimal definite form.
//!
//! Owns: refusing BER-only encodings of a certificate (long-form lengths that fit in
//! fewer bytes, leading zero length bytes, indefinite lengths). The same certificate in
//! another encoding would have another thumbprint: logged, cached and perhaps pinned under
//! a name that is not the certificate's.
//! Must not: interpret what the TLVs mean (x509-parser does).

/// Nesting deeper than this is refused (certificates nest about 10 levels).
const MAX_DEPTH: usize = 64;

/// Checks the TLV framing of `der`, descending into constructed values (and into OCTET
/// STRING / BIT STRING contents only where they are constructed, which DER forbids).
pub(super) fn check_lengths(der: &[u8]) -> Result<(), String> {
    walk(der, 0)
}

fn walk(mut input: &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".to_owned());
    }
    while !input.is_empty() {
        let (constructed, header, len) = header(input)?;
        let end = header
            .checked_add(len)
            .filter(|e| *e <= input.len())
            .ok_or_else(|| "a length runs past the end".to_owned())?;
        if constructed {
            walk(&input[header..end], depth + 1)?;
        }
        input = &input[end..];
    }
    Ok(())
}

/// (constructed, header length, content length) of the TLV at the start of `input`.
fn header(input: &[u8]) -> Result<(bool, usize, usize), String> {
    let truncated = || "truncated".to_owned();
    let tag = *input.first().ok_or_else(truncated)?;
    let constructed = tag & 0x20 != 0;
    let mut at = 1;
    if tag & 0x1F == 0x1F {
        // High tag number: base-128, no leading 0x80 byte.
        if *input.get(at).ok_or_else(truncated)? == 0x80 {
            return Err("a tag number has a leading zero".to_owned());
        }
        while *input.get(at).ok_or_else(truncated)? & 0x80 != 0 {
            at += 1;
            if at > 5 {
                return Err("a tag number is too large".to_owned());
            }
        }
        at += 1;
    }
    let first = *input.get(at).ok_or_else(truncated)?;
    at += 1;
    if first < 0x80 {
        return Ok((constructed, at, first as usize));
    }
    let count = (first & 0x7F) as usize;
    if count == 0 {
        return Err("an indefinite length".to_owned());
    }
    if count > size_of::<usize>() {
        return Err("a length is too large".to_owned());
    }
    let bytes = input.get(at..at + count).ok_or_else(truncated)?;
    if bytes[0] == 0 {
        return Err("a length has a leading zero byte".to_owned());
    }
    let len = bytes.iter().fold(0usize, |acc, b| acc << 8 | *b as usize);
    if len < 0x80 {
        return Err("a short length in the long form".to_owned());
    }
    Ok((constructed, at + count, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_lengths_pass_and_padded_or_indefinite_ones_do_not() {
        assert!(check_lengths(&[0x30, 0x03, 0x02, 0x01, 0x05]).is_ok());
        assert!(check_lengths(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x05]).is_err());
        assert!(check_lengths(&[0x30, 0x82, 0x00, 0x03, 0x02, 0x01, 0x05]).is_err());
        assert!(check_lengths(&[0x30, 0x03, 0x02, 0x81, 0x01, 0x05]).is_err());
        assert!(check_lengths(&[0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00]).is_err());
        assert!(check_lengths(&[0x30, 0x05, 0x02, 0x01]).is_err());
        let long: Vec<u8> = [0x04, 0x81, 0x80].into_iter().chain([0u8; 0x80]).collect();
        assert!(check_lengths(&long).is_ok());
    }
}

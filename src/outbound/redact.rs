//! Redacting URLs before they are quoted in a message (start-up errors, logs, answers).
//!
//! Owns: what of a URL may be shown: scheme, host, port and path. User info (`user:password@`)
//! and the query string (`?code=…`, `?sig=…`: Functions keys, SAS tokens) become `***`; a
//! fragment is dropped. Works on text that is not a valid URL too, so a setting that fails to
//! parse is still quoted safely.
//! Must not: parse for any other purpose (validation is `config`'s job).

/// `value` with user info and query redacted: `https://***@host/path?***`.
pub fn url(value: &str) -> String {
    let value = value.trim();
    let (scheme, rest) = match value.find("://") {
        Some(i) => value.split_at(i + 3),
        None => ("", value),
    };
    // The authority ends at the first '/', '?' or '#'; user info is everything up to its
    // last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_owned(),
    };
    format!("{scheme}{host}{tail}")
}

/// `text` with every `http://…`/`https://…` in it passed through [`url`]. A URL ends at
/// whitespace, a quote, `>`, `)` or a comma-free end of text.
pub fn urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let start = [lower.find("http://"), lower.find("https://")]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = start else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | '`'))
            .unwrap_or(candidate.len());
        out.push_str(&url(&candidate[..end]));
        rest = &candidate[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_and_query_are_hidden_but_host_and_path_stay() {
        assert_eq!(
            url("http://svc:Pa55w0rd@partner.example/api?code=k3y#frag"),
            "http://***@partner.example/api?***"
        );
        assert_eq!(
            url("https://partner.example:8443/a/b"),
            "https://partner.example:8443/a/b"
        );
        assert_eq!(url("https://u@h?x=1"), "https://***@h?***");
        // Not a URL at all: still no password.
        assert_eq!(url("svc:Pa55w0rd@host"), "***@host");
        assert_eq!(url("https://a:b@"), "https://***@");
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        let t = "error sending request for url (https://u:p@h/x?sig=s): \
                 proxy \"HTTP://user:pw@proxy:3128\" refused";
        let r = urls_in(t);
        assert!(
            !r.contains("sig=s") && !r.contains(":p@") && !r.contains("pw"),
            "{r}"
        );
        assert!(r.contains("https://***@h/x?***") && r.contains("HTTP://***@proxy:3128"));
        assert_eq!(urls_in("no url here"), "no url here");
    }
}

//! The Functions host's custom-handler protocol.
//!
//! Owns: the names of our functions, and the JSON invocation format the host uses for
//! functions that are not pure HTTP in/out (`POST /{function}` with `Data`/`Metadata`,
//! answered with `Outputs`/`Logs`). See `functions-host.md` section 2.
//! Must not: decide answers (see `app`). Payloads come from the host but are parsed as if
//! hostile: any shape yields a clean result, never a panic.

use crate::host::answer::Answer;
use serde_json::{json, Map, Value};

/// The functions this app serves (folder name = function name = route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Health,
    CertInfo,
    OutboundMtls,
}

impl Function {
    pub const ALL: [Self; 3] = [Self::Health, Self::CertInfo, Self::OutboundMtls];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::CertInfo => "cert-info",
            Self::OutboundMtls => "outbound-mtls",
        }
    }
}

/// The trigger binding name in our `function.json` files.
const TRIGGER_NAME: &str = "req";
/// The output binding name in our `function.json` files.
const OUTPUT_NAME: &str = "res";

/// Every value of the header `name` (case-insensitive) in a JSON invocation payload.
///
/// The host sends `Data.req.Headers` as an object of string arrays; a lone string is
/// accepted too. A value that is not a string (a number, an object) is passed on as an
/// empty value so the certificate rules reject it as malformed rather than ignore it.
/// A payload without `Data.req.Headers` simply has no such header.
pub fn header_values(payload: &Value, name: &str) -> Vec<Vec<u8>> {
    let Some(headers) = trigger(payload).and_then(|req| get_ci(req, "Headers")) else {
        return Vec::new();
    };
    let Some(headers) = headers.as_object() else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for (key, value) in headers {
        if !key.eq_ignore_ascii_case(name) {
            continue;
        }
        match value {
            Value::Array(items) => {
                values.extend(
                    items
                        .iter()
                        .map(|v| v.as_str().unwrap_or("\0").as_bytes().to_vec()),
                );
            }
            Value::String(s) => values.push(s.as_bytes().to_vec()),
            Value::Null => {}
            _ => values.push(b"\0".to_vec()),
        }
    }
    values
}

/// `Data.req`, or failing that the only object under `Data` that has `Headers`.
fn trigger(payload: &Value) -> Option<&Map<String, Value>> {
    let data = get_ci(payload.as_object()?, "Data")?.as_object()?;
    if let Some(req) = get_ci(data, TRIGGER_NAME).and_then(Value::as_object) {
        return Some(req);
    }
    let mut with_headers = data
        .values()
        .filter_map(Value::as_object)
        .filter(|o| get_ci(o, "Headers").is_some());
    let first = with_headers.next()?;
    with_headers.next().is_none().then_some(first)
}

/// Case-insensitive key lookup, as Newtonsoft does on the host side.
fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The JSON-mode response body: always delivered with HTTP 200, the real status inside.
///
/// `body` is a JSON string (not an object) so the host writes it verbatim with our
/// `Content-Type`.
pub fn invocation_response(answer: &Answer, function: Function) -> Value {
    let mut logs = Vec::new();
    if !answer.status.is_success() {
        logs.push(format!(
            "{}: {} {}",
            function.name(),
            answer.status.as_u16(),
            answer.code.as_deref().unwrap_or("error")
        ));
    }
    json!({
        "Outputs": {
            OUTPUT_NAME: {
                "statusCode": answer.status.as_u16(),
                "body": answer.body_text(),
                "headers": { "Content-Type": "application/json", "Cache-Control": "no-store" },
            }
        },
        "Logs": logs,
        "ReturnValue": Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_in_the_payload_are_case_insensitive() {
        let p = json!({"Data": {"req": {"Headers": {"x-arr-clientcert": ["abc"]}}}});
        assert_eq!(header_values(&p, "X-ARR-ClientCert"), vec![b"abc".to_vec()]);
    }

    #[test]
    fn a_payload_without_headers_has_no_certificate() {
        for p in [
            json!(null),
            json!({}),
            json!({"Data": 5}),
            json!({"Data": {"req": {}}}),
        ] {
            assert!(header_values(&p, "X-ARR-ClientCert").is_empty());
        }
    }

    #[test]
    fn non_string_header_values_are_kept_so_they_are_rejected() {
        let p = json!({"Data": {"req": {"Headers": {"X-ARR-ClientCert": [1, "b"]}}}});
        assert_eq!(header_values(&p, "X-ARR-ClientCert").len(), 2);
    }
}

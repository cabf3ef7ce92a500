//! The Functions host's JSON invocation protocol.
//!
//! Owns: reading the request out of the JSON invocation format the host uses for
//! functions that are not pure HTTP in/out (`POST /{function}` with `Data`/`Metadata`:
//! `Method`, `Query`, `Params`, `Headers`, `Body`), and answering with `Outputs`/`Logs`.
//! See `functions-host.md` section 2.
//! Must not: decide answers (see `app`). Payloads come from the host but are parsed as if
//! hostile: any shape yields a clean result, never a panic.

use crate::host::answer::Answer;
use crate::host::function::{CertHeaderNames, Method};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::{HeaderMap, HeaderName, HeaderValue};

/// The certificate header, as `HeaderMap` keys are spelled (lowercase).
pub const CERT_HEADER: HeaderName = HeaderName::from_static("x-arr-clientcert");

/// The request inside a JSON invocation, as `Data.req` describes it.
#[derive(Debug)]
pub struct JsonRequest {
    /// `Method`; a payload without one is a `GET` (the host always sends it), one that is
    /// not a method a function can declare is `None` (405).
    pub method: Option<Method>,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// `Headers` without the certificate headers; names or values HTTP cannot carry are
    /// dropped.
    pub headers: HeaderMap,
    /// The configured certificate header's values (see [`header_values`]).
    pub cert_values: Vec<Vec<u8>>,
    /// The configured chain header's values (`rfc9440`; else none).
    pub chain_values: Vec<Vec<u8>>,
    /// `Body`: text as its UTF-8 bytes, base64 for `application/octet-stream` and
    /// `multipart/*` (how the host sends bytes), any other JSON value re-serialized. `Err`
    /// says why it could not be read.
    pub body: Result<Bytes, String>,
}

/// Reads everything a function needs from a JSON invocation payload, the certificate from
/// the headers `names` configures.
pub fn read_request(payload: &Value, names: &CertHeaderNames) -> JsonRequest {
    let req = trigger(payload);
    let field = |name: &str| req.and_then(|r| get_ci(r, name));
    let method = match field("Method") {
        None | Some(Value::Null) => Some(Method::Get),
        Some(Value::String(m)) => Method::parse(m),
        Some(_) => None,
    };
    let headers = field("Headers").map_or_else(HeaderMap::new, |h| to_header_map(h, names));
    let body = read_body(field("Body"), &headers);
    JsonRequest {
        method,
        params: field("Params").map(to_pairs).unwrap_or_default(),
        query: field("Query").map(to_pairs).unwrap_or_default(),
        cert_values: header_values(payload, names.cert.as_str()),
        chain_values: names
            .chain
            .as_ref()
            .map(|c| header_values(payload, c.as_str()))
            .unwrap_or_default(),
        headers,
        body,
    }
}

fn read_body(body: Option<&Value>, headers: &HeaderMap) -> Result<Bytes, String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let binary = content_type.starts_with("application/octet-stream")
        || content_type.starts_with("multipart/");
    match body {
        None | Some(Value::Null) => Ok(Bytes::new()),
        Some(Value::String(text)) if binary => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Bytes::from)
            .map_err(|e| format!("the invocation's Body is not base64: {e}")),
        Some(Value::String(text)) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Some(other) => serde_json::to_vec(other)
            .map(Bytes::from)
            .map_err(|e| e.to_string()),
    }
}

/// `Query`/`Params`: an object of strings (arrays joined with `,`, other values as JSON).
fn to_pairs(value: &Value) -> Vec<(String, String)> {
    let Some(object) = value.as_object() else {
        return Vec::new();
    };
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// `Headers`: an object of string arrays (a lone string is accepted too).
fn to_header_map(value: &Value, names: &CertHeaderNames) -> HeaderMap {
    let mut map = HeaderMap::new();
    let Some(object) = value.as_object() else {
        return map;
    };
    for (key, value) in object {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            continue;
        };
        if names.hides(&name) {
            continue;
        }
        let values: Vec<&str> = match value {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => Vec::new(),
        };
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                map.append(name.clone(), v);
            }
        }
    }
    map
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
pub fn invocation_response(answer: &Answer, function: &str) -> Value {
    let mut logs = Vec::new();
    if !answer.status.is_success() {
        logs.push(format!(
            "{}: {} {}",
            function,
            answer.status.as_u16(),
            answer.code.as_deref().unwrap_or("error")
        ));
    }
    let mut headers = json!({ "Content-Type": "application/json", "Cache-Control": "no-store" });
    for (name, value) in &answer.headers {
        if let (Some(object), Ok(value)) = (headers.as_object_mut(), value.to_str()) {
            object.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    json!({
        "Outputs": {
            OUTPUT_NAME: {
                "statusCode": answer.status.as_u16(),
                "body": answer.body_text(),
                "headers": headers,
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

//! Functions as the host sees them: the repository's folders against the registered
//! functions (the check start-up makes), start-up refusing a mismatch, and the request
//! context a function receives, the same in forwarding and JSON modes: method, route and
//! query parameters, headers without the certificate header, body, invocation id and the
//! caller's identity; every declared method, 405 otherwise, and the body limit.

#[path = "support/app.rs"]
mod app_support;
mod common;

use app_support::{app_root, client, function_json, App, Pki, PARTNER_CN};
use common::run_to_exit;
use mtls_handler::host::answer::Answer;
use mtls_handler::host::function::AppState;
use mtls_handler::host::function::{Function, Method, Outcome, Registry, Request};
use serde_json::{json, Value};
use std::sync::Arc;

#[test]
fn the_repository_function_folders_match_the_registered_functions() {
    let registry = Registry::new(mtls_handler::functions::all()).unwrap();
    let problems = mtls_handler::host::folders::check(&app_support::repo_root(), &registry);
    assert!(
        problems.is_empty(),
        "function folders and src/functions disagree:\n{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Runs the real binary with its app root at `root` and expects exit 1 with one line.
fn refused_start(root: &std::path::Path) -> String {
    let (status, _, stderr) =
        run_to_exit(&[("FUNCTIONS_APP_ROOT_PATH", root.to_str().unwrap())], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

#[test]
fn start_up_refuses_a_function_folder_that_no_function_serves() {
    let root = app_root(&[("orders", function_json("orders", &["post"]))]);
    let line = refused_start(root.path());
    assert!(line.contains("folder orders/"), "{line}");
    assert!(line.contains("no function is registered"), "{line}");
}

#[test]
fn start_up_refuses_a_registered_function_without_its_folder() {
    let root = app_root(&[]);
    std::fs::remove_dir_all(root.path().join("cert-info")).unwrap();
    let line = refused_start(root.path());
    assert!(line.contains("folder cert-info/ is missing"), "{line}");
}

#[test]
fn start_up_refuses_a_function_json_whose_route_or_methods_differ() {
    let root = app_root(&[]);
    std::fs::write(
        root.path().join("health").join("function.json"),
        function_json("healthz", &["get", "post"]),
    )
    .unwrap();
    let line = refused_start(root.path());
    assert!(
        line.contains(
            r#"folder health/: function.json says route "healthz", the function declares "health""#
        ),
        "{line}"
    );
    assert!(
        line.contains("allows methods [get, post], the function declares [get]"),
        "{line}"
    );
}

#[test]
fn the_function_folders_are_read_from_the_app_root_the_host_names() {
    // The working directory has no folders; FUNCTIONS_APP_ROOT_PATH points at the repository.
    let elsewhere = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", app_support::repo_root())
        .current_dir(elsewhere.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut listening = false;
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening,
        "the handler did not start from the host's app root"
    );
}

// === The request context ===

/// Echoes what it received.
async fn echo(req: Request, _app: Arc<AppState>) -> Outcome {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .filter(|(k, _)| k.starts_with("x-test") || k == "x-arr-clientcert")
        .collect();
    headers.sort();
    Ok(Answer::ok(&json!({
        "method": req.method().as_str(),
        "id": req.param("id"),
        "params": req.params(),
        "query": req.query_pairs(),
        "headers": headers,
        "body": String::from_utf8_lossy(req.body()),
        "invocationId": req.invocation_id(),
        "caller": req.caller().ok().map(|c| json!({
            "commonName": c.common_name(),
            "thumbprintSha256": c.thumbprint_sha256(),
            "partner": c.partner(),
        })),
    }))
    .with_header("x-echo", "1"))
}

const ALL: [Method; 5] = Method::ALL;

fn echo_functions() -> Vec<Function> {
    let mut functions = mtls_handler::functions::all();
    functions.push(Function::new("echo", &ALL, echo).route("echo/{id}"));
    functions.push(Function::new("open-echo", &[Method::Post], echo).public());
    functions
}

async fn echo_app(pki: &Pki, extra_env: &[(&str, &str)]) -> App {
    let root = app_root(&[
        (
            "echo",
            function_json("echo/{id}", &["get", "post", "put", "patch", "delete"]),
        ),
        ("open-echo", function_json("open-echo", &["post"])),
    ]);
    let mut env = pki.settings(root.path(), None);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    App::start(echo_functions(), root, &env).await
}

async fn forwarded(
    app: &App,
    method: &str,
    path: &str,
    cert: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), app.url(path))
        .header("X-Test-One", "1")
        .header("X-Azure-Functions-InvocationId", "inv-fwd-1")
        .body(body.to_owned());
    if let Some(c) = cert {
        req = req.header("X-ARR-ClientCert", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap())
}

fn json_req(
    method: &str,
    url_path: &str,
    params: Value,
    query: Value,
    cert: Option<&str>,
    body: &str,
) -> Value {
    let mut headers = json!({ "X-Test-One": ["1"] });
    if let Some(c) = cert {
        headers["X-ARR-ClientCert"] = json!([c]);
    }
    json!({
        "Url": format!("https://app.azurewebsites.net{url_path}"),
        "Method": method, "Query": query, "Params": params, "Headers": headers,
        "Identities": [], "Body": body,
    })
}

#[tokio::test]
async fn the_request_context_is_the_same_in_forwarding_and_json_modes() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[]).await;
    let cert = pki.caller.header_value();
    let (status, headers, fwd) = forwarded(
        &app,
        "PATCH",
        "/api/echo/a%20b?x=1&y=two+words&x=3",
        Some(&cert),
        r#"{"n":1}"#,
    )
    .await;
    assert_eq!(status, 200, "{fwd}");
    assert_eq!(headers["x-echo"], "1");
    assert_eq!(fwd["method"], "PATCH");
    assert_eq!(fwd["id"], "a b");
    assert_eq!(fwd["query"], json!([["x", "1,3"], ["y", "two words"]]));
    assert_eq!(fwd["headers"], json!([["x-test-one", "1"]]));
    assert_eq!(fwd["body"], r#"{"n":1}"#);
    assert_eq!(fwd["invocationId"], "inv-fwd-1");
    assert_eq!(fwd["caller"]["commonName"], PARTNER_CN);
    assert_eq!(fwd["caller"]["partner"], "app-settings");

    let out = app
        .invoke(
            "echo",
            json_req(
                "PATCH",
                "/api/echo/a%20b?x=1&y=two+words&x=3",
                json!({"id": "a b"}),
                json!({"x": "1,3", "y": "two words"}),
                Some(&cert),
                r#"{"n":1}"#,
            ),
        )
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.headers["x-echo"], "1");
    let mut json_mode = out.body;
    assert_eq!(json_mode["invocationId"], "inv-json-1");
    json_mode["invocationId"] = fwd["invocationId"].clone();
    assert_eq!(json_mode, fwd);
}

#[tokio::test]
async fn the_certificate_header_is_hidden_from_functions_in_both_modes() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[]).await;
    let cert = pki.caller.header_value();
    let res = client()
        .post(app.url("/api/echo/1"))
        .header("x-arr-clientcert", &cert)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["caller"]["commonName"], PARTNER_CN, "{body}");
    assert_eq!(body["headers"], json!([]), "{body}");
    let mut req = json_req(
        "POST",
        "/api/echo/1",
        json!({"id": "1"}),
        json!({}),
        None,
        "",
    );
    req["Headers"] = json!({ "x-Arr-ClientCERT": [cert] });
    let out = app.invoke("echo", req).await;
    assert_eq!(
        out.body["caller"]["commonName"], PARTNER_CN,
        "{:?}",
        out.body
    );
    assert_eq!(out.body["headers"], json!([]));
    // A public function neither checks nor shows the header, or a caller.
    let res = client()
        .post(app.url("/api/open-echo"))
        .header("X-ARR-ClientCert", &cert)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (&body["headers"], &body["caller"]),
        (&json!([]), &Value::Null)
    );
}

#[tokio::test]
async fn every_declared_method_is_served_and_others_get_405_with_allow_in_both_modes() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[]).await;
    let cert = pki.caller.header_value();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let (status, _, body) = forwarded(&app, method, "/api/echo/7", Some(&cert), "").await;
        assert_eq!((status, body["method"].as_str()), (200, Some(method)));
        let out = app
            .invoke(
                "echo",
                json_req(
                    method,
                    "/api/echo/7",
                    json!({"id": "7"}),
                    json!({}),
                    Some(&cert),
                    "",
                ),
            )
            .await;
        assert_eq!(
            (out.status, out.body["method"].as_str()),
            (200, Some(method))
        );
    }
    for (method, path, allow) in [
        ("OPTIONS", "/api/echo/7", "GET, POST, PUT, PATCH, DELETE"),
        ("GET", "/api/open-echo", "POST"),
        ("DELETE", "/api/cert-info", "GET"),
    ] {
        // No certificate: the method is refused before the gate is asked.
        let res = client()
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow);
        assert_eq!(
            res.json::<Value>().await.unwrap()["code"],
            "method_not_allowed"
        );
        let function = path.trim_start_matches("/api/").split('/').next().unwrap();
        let out = app
            .invoke(
                function,
                json_req(method, path, json!({"id": "7"}), json!({}), None, ""),
            )
            .await;
        assert_eq!(
            (out.status, out.body["code"].as_str()),
            (405, Some("method_not_allowed"))
        );
        assert_eq!(out.headers["allow"], allow);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_gets_a_413_json_error_in_both_modes() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[("MAX_REQUEST_BODY_BYTES", "1000")]).await;
    let cert = pki.caller.header_value();
    let at_limit = "a".repeat(1000);
    let over = "a".repeat(1001);
    let (status, _, body) = forwarded(&app, "POST", "/api/echo/1", Some(&cert), &at_limit).await;
    assert_eq!(
        (status, body["body"].as_str().map(str::len)),
        (200, Some(1000))
    );
    let (status, _, body) = forwarded(&app, "POST", "/api/echo/1", Some(&cert), &over).await;
    assert_eq!(
        (status, &body),
        (
            413,
            &json!({"error": "request body too large", "code": "payload_too_large"})
        )
    );
    // Without Content-Length (chunked), the limit holds while reading.
    let status = chunked_post(app.addr, "/api/echo/1", &cert, &over).await;
    assert_eq!(status, 413);
    let req = |body: &str| {
        json_req(
            "POST",
            "/api/echo/1",
            json!({"id": "1"}),
            json!({}),
            Some(&cert),
            body,
        )
    };
    let out = app.invoke("echo", req(&at_limit)).await;
    assert_eq!(out.status, 200);
    let out = app.invoke("echo", req(&over)).await;
    assert_eq!(
        (out.status, out.body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

/// A chunked POST over raw HTTP/1.1 (no Content-Length); returns the status.
async fn chunked_post(addr: std::net::SocketAddr, path: &str, cert: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {cert}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(100) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            String::from_utf8_lossy(chunk)
        ));
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = s.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn without_an_accepted_certificate_a_gated_function_answers_403_and_never_runs() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[("MAX_REQUEST_BODY_BYTES", "10")]).await;
    // The gate comes before the body: a stranger's oversized body is a 403, not a 413.
    let (status, _, body) = forwarded(&app, "POST", "/api/echo/1", None, &"a".repeat(100)).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("missing")));
    let out = app
        .invoke(
            "echo",
            json_req(
                "POST",
                "/api/echo/1",
                json!({"id": "1"}),
                json!({}),
                Some("junk"),
                "",
            ),
        )
        .await;
    assert_eq!(
        (out.status, out.body["code"].as_str()),
        (403, Some("malformed"))
    );
}

#[tokio::test]
async fn json_mode_bodies_sent_as_bytes_arrive_decoded() {
    let pki = Pki::new();
    let app = echo_app(&pki, &[]).await;
    let cert = pki.caller.header_value();
    let mut req = json_req(
        "POST",
        "/api/echo/1",
        json!({"id": "1"}),
        json!({}),
        Some(&cert),
        "aGVsbG8=",
    );
    req["Headers"]["Content-Type"] = json!(["application/octet-stream"]);
    let out = app.invoke("echo", req).await;
    assert_eq!(out.body["body"], "hello");
    let mut req = json_req(
        "POST",
        "/api/echo/1",
        json!({"id": "1"}),
        json!({}),
        Some(&cert),
        "",
    );
    req["Body"] = json!({"already": "parsed"});
    let out = app.invoke("echo", req).await;
    assert_eq!(out.body["body"], r#"{"already":"parsed"}"#);
    let mut req = json_req(
        "POST",
        "/api/echo/1",
        json!({"id": "1"}),
        json!({}),
        Some(&cert),
        "%%%",
    );
    req["Headers"]["Content-Type"] = json!(["application/octet-stream"]);
    let out = app.invoke("echo", req).await;
    assert_eq!(
        (out.status, out.body["code"].as_str()),
        (400, Some("invalid_body"))
    );
}

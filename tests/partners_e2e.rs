//! Partners with the real `handler` binary: two partners from two CAs served side by side
//! with different functions, issuer binding, per-function refusal in both host protocols,
//! the document changed (well and badly) without a restart, the shadow document, and
//! expiry warnings.

mod common;

use common::{run_to_exit, write, Handler, TestPki};
use mtls_handler::inbound::client_cert::Thumbprint;
use mtls_handler::tools::pki::Issued;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(h: &Handler, path: &str, cert: &Issued) -> (u16, Value) {
    let res = client()
        .get(h.url(path))
        .header("X-ARR-ClientCert", cert.header_value())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn health(h: &Handler) -> Value {
    client()
        .get(h.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A JSON-mode invocation; returns the status and body inside `Outputs.res`.
async fn invoke(h: &Handler, function: &str, cert: &Issued) -> (u16, Value) {
    let payload = json!({
        "Data": { "req": { "Url": format!("https://app/api/{function}"), "Method": "GET",
            "Headers": { "X-ARR-ClientCert": [cert.header_value()] } } },
        "Metadata": {}
    });
    let body: Value = client()
        .post(h.url(&format!("/{function}")))
        .json(&payload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let out = &body["Outputs"]["res"];
    let inner = serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap();
    (out["statusCode"].as_u64().unwrap_or(0) as u16, inner)
}

/// Waits (at most 20 s) until the handler's log contains `needle` `times` times.
fn wait_for_log(h: &Handler, needle: &str, times: usize) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if h.log_text().matches(needle).count() >= times {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {needle:?} in the log:\n{}", h.log_text());
}

fn fp(cert: &Issued) -> String {
    Thumbprint::of_der(&cert.der()).1.to_string()
}

/// Fabrikam (CA a, cert-info only) and Northwind (CA b, outbound-mtls only).
struct World {
    a: TestPki,
    b: TestPki,
    fabrikam: Issued,
    northwind: Issued,
    dir: tempfile::TempDir,
    ca: String,
}

impl World {
    fn new() -> Self {
        let (a, b) = (TestPki::new(), TestPki::new());
        let dir = tempfile::tempdir().unwrap();
        let mut bundle = a.ca_bundle_pem();
        bundle.extend(b.ca_bundle_pem());
        let ca = write(dir.path(), "ca.pem", &bundle);
        Self {
            fabrikam: a.client("api.fabrikam.example"),
            northwind: b.client("api.northwind.example"),
            a,
            b,
            dir,
            ca,
        }
    }

    fn document(&self, northwind_functions: &[&str]) -> Value {
        json!({"partners": [
            {"name": "Fabrikam", "issuer": fp(&self.a.issuing),
             "match": {"commonName": "api.fabrikam.example"}, "functions": ["cert-info"],
             "notAfterWarningDays": 400},
            {"name": "Northwind", "issuer": fp(&self.b.issuing),
             "match": {"commonName": "api.northwind.example"}, "functions": northwind_functions},
        ]})
    }

    fn write_document(&self, name: &str, doc: &str) -> String {
        // Written whole, then renamed into place, as a deployment does.
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, doc).unwrap();
        let path = self.dir.path().join(name);
        std::fs::rename(&tmp, &path).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn start(&self, extra: &[(&str, &str)]) -> Handler {
        let mut env = vec![
            ("CLIENT_CERT_CA_PATH", self.ca.as_str()),
            ("CLIENT_CERT_PARTNERS_CHECK_SECONDS", "1"),
            ("RUST_LOG", "info"),
        ];
        env.extend_from_slice(extra);
        Handler::start(&env)
    }
}

#[tokio::test]
async fn two_partners_from_two_cas_are_served_side_by_side_each_with_its_own_functions() {
    let w = World::new();
    let doc = w.document(&["outbound-mtls"]).to_string();
    let h = w.start(&[("CLIENT_CERT_PARTNERS", doc.as_str())]);

    let (status, body) = get(&h, "/api/cert-info", &w.fabrikam).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partner"], "Fabrikam");
    assert_eq!(body["functions"], json!(["cert-info"]));

    // Northwind may call outbound-mtls (not configured here: 503), not cert-info.
    let (status, body) = get(&h, "/api/cert-info", &w.northwind).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("function_not_allowed"))
    );
    let (status, body) = get(&h, "/api/outbound-mtls", &w.northwind).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("outbound_not_configured"))
    );
    let (status, body) = get(&h, "/api/outbound-mtls", &w.fabrikam).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("function_not_allowed"))
    );

    // The same in the JSON invocation protocol.
    let (status, body) = invoke(&h, "cert-info", &w.fabrikam).await;
    assert_eq!((status, body["partner"].as_str()), (200, Some("Fabrikam")));
    let (status, body) = invoke(&h, "cert-info", &w.northwind).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("function_not_allowed"))
    );
    let (status, body) = invoke(&h, "outbound-mtls", &w.fabrikam).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("function_not_allowed"))
    );

    // A third certificate with Fabrikam's name from Northwind's CA: refused by issuer
    // binding, although its CA is trusted.
    let impostor = w.b.client("api.fabrikam.example");
    let (status, body) = get(&h, "/api/cert-info", &impostor).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("wrong_issuer")));
    // Nobody else: not allowlisted (the seed's default name is not a partner here).
    let (status, body) = get(&h, "/api/cert-info", &w.a.client("api-client.contoso.com")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_allowlisted"))
    );

    let log = h.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("function_not_allowed") && l.contains("Northwind")),
        "the refusal names the partner:\n{log}"
    );
    let health = health(&h).await;
    assert_eq!(health["partners"]["source"], "setting CLIENT_CERT_PARTNERS");
    assert_eq!(health["partners"]["partners"], 2);
    assert_eq!(
        health["partners"]["sha256"],
        Thumbprint::Sha256(mtls_handler::inbound::client_cert::sha256(doc.as_bytes())).to_string()
    );
}

#[tokio::test]
async fn a_changed_document_file_takes_effect_without_a_restart_and_a_bad_one_is_ignored() {
    let w = World::new();
    let path = w.write_document("partners.json", &w.document(&["outbound-mtls"]).to_string());
    let h = w.start(&[("CLIENT_CERT_PARTNERS_PATH", path.as_str())]);
    assert_eq!(get(&h, "/api/cert-info", &w.northwind).await.0, 403);

    w.write_document("partners.json", &w.document(&["*"]).to_string());
    wait_for_log(&h, "partners document reloaded", 1);
    let (status, body) = get(&h, "/api/cert-info", &w.northwind).await;
    assert_eq!(
        (status, body["functions"].clone()),
        (200, json!(["*"])),
        "{body}"
    );

    // A broken document: logged with its position, the previous one stays in force.
    w.write_document("partners.json", "{\"partners\": [\n  {\"name\": 5}\n]}");
    wait_for_log(&h, "partners document not reloaded", 1);
    assert!(h.log_text().contains("line 2, column"), "{}", h.log_text());
    assert_eq!(get(&h, "/api/cert-info", &w.northwind).await.0, 200);
    let health = health(&h).await;
    let error = health["partners"]["lastReloadError"]["error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains("$.partners[0].name"), "{health}");
}

#[test]
fn a_bad_document_stops_start_up_with_its_line_column_and_path() {
    let w = World::new();
    let path = w.write_document(
        "p.json",
        "{\"partners\": [{\"name\": \"A\",\n \"functions\": [\"*\"], \"match\": {}}]}",
    );
    let (status, _, err) = run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", &w.ca),
            ("CLIENT_CERT_PARTNERS_PATH", &path),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("CLIENT_CERT_PARTNERS_PATH"), "{err}");
    assert!(
        err.contains("line 2, column") && err.contains("$.partners[0].match"),
        "{err}"
    );
}

#[tokio::test]
async fn the_shadow_reports_exactly_the_requests_the_candidate_decides_differently() {
    let w = World::new();
    let enforced = w.write_document("enforced.json", &w.document(&["outbound-mtls"]).to_string());
    let candidate = w.write_document("candidate.json", &w.document(&["*"]).to_string());
    let h = w.start(&[
        ("CLIENT_CERT_PARTNERS_PATH", enforced.as_str()),
        ("CLIENT_CERT_SHADOW_PARTNERS_PATH", candidate.as_str()),
    ]);
    // Same under both: Fabrikam's cert-info, Northwind's outbound-mtls.
    assert_eq!(get(&h, "/api/cert-info", &w.fabrikam).await.0, 200);
    assert_eq!(get(&h, "/api/outbound-mtls", &w.northwind).await.0, 503);
    // Different: Northwind's cert-info, refused now, allowed by the candidate (twice).
    assert_eq!(get(&h, "/api/cert-info", &w.northwind).await.0, 403);
    assert_eq!(invoke(&h, "cert-info", &w.northwind).await.0, 403);

    let health = health(&h).await;
    assert_eq!(
        health["partners"]["shadow"]["differences"],
        json!({"function_not_allowed -> allow": 2}),
        "{health}"
    );
    let log = h.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("shadow partners document decides differently"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line per certificate and function:\n{log}"
    );
    assert!(
        lines[0].contains("cert-info") && lines[0].contains("Northwind"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_partner_certificate_within_its_warning_days_is_reported_and_logged() {
    let w = World::new();
    let doc = w.document(&["*"]).to_string();
    let h = w.start(&[("CLIENT_CERT_PARTNERS", doc.as_str())]);
    assert_eq!(get(&h, "/api/cert-info", &w.fabrikam).await.0, 200);
    assert_eq!(get(&h, "/api/cert-info", &w.northwind).await.0, 200);
    let health = health(&h).await;
    let expiring = health["partners"]["expiring"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Fabrikam warns 400 days ahead (its certificate has 365); Northwind the default 30.
    assert_eq!(expiring.len(), 1, "{health}");
    assert_eq!(expiring[0]["partner"], "Fabrikam");
    assert_eq!(expiring[0]["thumbprint"], fp(&w.fabrikam));
    wait_for_log(&h, "partner certificate expires soon", 1);
}

#[test]
fn a_document_may_not_use_the_flat_settings_partner_name_while_they_are_set() {
    let w = World::new();
    let doc = json!({"partners": [{"name": "app-settings", "match": {"thumbprintSha256": fp(&w.fabrikam)}, "functions": ["*"]}]});
    let path = w.write_document("p.json", &doc.to_string());
    let (status, _, err) = run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", &w.ca),
            ("CLIENT_CERT_PARTNERS_PATH", &path),
            ("ALLOWED_CLIENT_CERT_COMMON_NAMES", "x.example"),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("clear them"), "{err}");
}

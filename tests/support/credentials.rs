//! Stand-ins for the credential tests, next to those in `support/outbound.rs`:
//! - a Microsoft Entra token endpoint (`POST /{tenant}/oauth2/v2.0/token`, https, as
//!   `login.test`), which the SDK reaches through `AZURE_AUTHORITY_HOST`. It checks what the
//!   real one checks for the client-credentials grant: the tenant (else AADSTS90002), the
//!   application (AADSTS700016), the client secret (AADSTS7000215), a client assertion that
//!   is either the workload identity's federated token or a JWT signed (RS256) with the
//!   certificate registered on the application, named by its `x5t` (AADSTS700027);
//! - a stub `az` on `PATH` that answers `az account get-access-token -o json --scope …` as
//!   the Azure CLI does (JSON with `accessToken`, `expiresOn`, `expires_on`, …) and fails as
//!   it does when not logged in or when the session expired, and a stub `azd` that is never
//!   signed in (the SDK tries it after `az`);
//! - the child-process harness: the SDK reads `PATH` and the App Service variables from the
//!   process environment (`AZURE_AUTHORITY_HOST` is a typed setting the handler passes to
//!   the SDK as its cloud option), and tests never change their own, so
//!   each test re-runs itself in a child with a fixed environment (the stub directory is made
//!   by the parent, so the script is complete before anything can execute it).
//!
//! Include after `support/outbound.rs` as `#[path = "support/credentials.rs"] mod
//! credentials_support;`.
#![allow(dead_code)]

use crate::outbound_support::{
    acceptor, now, Pki, Reply, Seen, Server, ACCESS_TOKEN, IDENTITY_ENDPOINT, IDENTITY_HEADER,
};
use base64::Engine as _;
use mtls_handler::tools::pki::{CertSpec, Eku, Issued};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const AUTHORITY_HOST_NAME: &str = "login.test";
pub const AUTHORITY_HOST: &str = "https://login.test";
/// The tenant the vault's challenge names, too.
pub const TENANT_ID: &str = "00000000-0000-0000-0000-00000000feed";
pub const CLIENT_ID: &str = "22222222-3333-4444-5555-666666666666";
pub const CLIENT_SECRET: &str = "test-client-secret-value-not-real";
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-federated-service-account-token.sig";
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const CHILD_MARKER: &str = "MTLS_CREDENTIAL_TEST_CHILD";
const STUB_DIR: &str = "MTLS_CREDENTIAL_TEST_STUB_DIR";

// === Microsoft Entra token endpoint ===

/// The token endpoint. `registered` is the certificate registered on the application (for
/// `client-certificate`); the federated token and the client secret are constants.
pub struct Entra {
    pub server: Server,
    pub registered: Arc<Mutex<Option<X509>>>,
}

impl Entra {
    pub async fn start(pki: &Pki) -> Self {
        let tls = CertSpec::leaf(AUTHORITY_HOST_NAME, now(), 30)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_dns_names(&[AUTHORITY_HOST_NAME])
            .issued_by(&pki.server_ca)
            .unwrap();
        let registered: Arc<Mutex<Option<X509>>> = Arc::new(Mutex::new(None));
        let reg = registered.clone();
        let server = Server::start(Some(acceptor(&tls, &pki.server_ca).build()), move |seen| {
            token_reply(seen, reg.lock().unwrap().as_ref())
        })
        .await;
        Self { server, registered }
    }

    pub fn register(&self, cert: &X509) {
        *self.registered.lock().unwrap() = Some(cert.clone());
    }

    /// The form fields of every token request.
    pub fn requests(&self) -> Vec<(String, HashMap<String, String>)> {
        self.server
            .seen()
            .iter()
            .map(|s| (s.path_and_query.clone(), form(&s.body)))
            .collect()
    }
}

pub fn form(body: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Reply {
    let trace = "Trace ID: 0b5e6f3a-0000-4000-8000-000000000001 Correlation ID: \
                 0b5e6f3a-0000-4000-8000-000000000002 Timestamp: 2026-11-30 12:00:00Z";
    Reply::json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} {trace}"),
            "error_codes": [code],
            "timestamp": "2026-11-30 12:00:00Z",
            "trace_id": "0b5e6f3a-0000-4000-8000-000000000001",
            "correlation_id": "0b5e6f3a-0000-4000-8000-000000000002",
            "error_uri": format!("{AUTHORITY_HOST}/error?code={code}"),
        }),
    )
}

fn token_reply(seen: &Seen, registered: Option<&X509>) -> Reply {
    let path = seen.path_and_query.split('?').next().unwrap_or_default();
    let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
    else {
        return Reply::json(404, serde_json::json!({"error": "not_found"}));
    };
    if seen.method != "POST"
        || seen.header("content-type") != Some("application/x-www-form-urlencoded")
    {
        return entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    if tenant != TENANT_ID {
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud. Check with your subscription \
                 administrator, this may happen if there are no active subscriptions for the \
                 tenant."
            ),
        );
    }
    let f = form(&seen.body);
    let field = |k: &str| f.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return entra_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("scope") != Some(VAULT_SCOPE) {
        return entra_error(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let client = field("client_id").unwrap_or_default();
    if client != CLIENT_ID {
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client}' was not found in the directory \
                 '{tenant}'."
            ),
        );
    }
    // The client authenticates with its secret, or with an assertion: the workload
    // identity's federated token or a JWT signed by the registered certificate.
    match (field("client_secret"), field("client_assertion")) {
        (Some(secret), None) if secret == CLIENT_SECRET => {}
        (Some(_), None) => {
            return entra_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '22222222-3333-4444-5555-666666666666'.");
        }
        (None, Some(assertion)) => {
            if field("client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return entra_error(400, "invalid_request", 50027, "Invalid JWT token.");
            }
            if assertion != FEDERATED_TOKEN {
                if let Err(why) = verify_assertion(assertion, registered, tenant) {
                    return entra_error(
                        401,
                        "invalid_client",
                        700027,
                        &format!("Client assertion failed signature validation. ({why})"),
                    );
                }
            }
        }
        _ => return entra_error(400, "invalid_request", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
    }
    Reply::json(
        200,
        serde_json::json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": ACCESS_TOKEN,
        }),
    )
}

fn b64url(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| format!("bad base64url: {e}"))
}

/// A client assertion as Entra checks it: RS256 by the registered certificate's key, that
/// certificate named by `x5t`, audience the token endpoint, issuer and subject the client.
fn verify_assertion(jwt: &str, registered: Option<&X509>, tenant: &str) -> Result<(), String> {
    let cert = registered.ok_or("no certificate is registered on the application")?;
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWS".into());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64url(h)?).map_err(|e| e.to_string())?;
    let payload: serde_json::Value =
        serde_json::from_slice(&b64url(p)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let x5t = base64::engine::general_purpose::STANDARD
        .encode(cert.digest(MessageDigest::sha1()).unwrap());
    if header["x5t"] != x5t.as_str() {
        return Err("the certificate with identifier used to sign the client assertion is not registered on application".into());
    }
    let key = cert.public_key().map_err(|e| e.to_string())?;
    let mut verifier =
        openssl::sign::Verifier::new(MessageDigest::sha256(), &key).map_err(|e| e.to_string())?;
    verifier
        .update(format!("{h}.{p}").as_bytes())
        .map_err(|e| e.to_string())?;
    if !verifier.verify(&b64url(s)?).unwrap_or(false) {
        return Err("signature".into());
    }
    let endpoint = format!("{AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token");
    if payload["aud"] != endpoint.as_str()
        || payload["iss"] != CLIENT_ID
        || payload["sub"] != CLIENT_ID
        || payload["exp"].as_i64().unwrap_or(0) <= now()
    {
        return Err(format!("claims {payload}"));
    }
    Ok(())
}

// === The Azure CLI stub ===

/// How the stub `az` answers.
#[derive(Debug, Clone, Copy)]
pub enum AzMode {
    LoggedIn,
    LoggedOut,
    Expired,
}

/// The stub `az` in the directory the parent put first on the child's `PATH`.
pub struct AzStub {
    pub dir: PathBuf,
}

impl AzStub {
    /// The stub the parent wrote for this child.
    pub fn from_env() -> Self {
        let dir = PathBuf::from(std::env::var_os(STUB_DIR).expect("run inside the child"));
        Self { dir }
    }

    pub fn set(&self, mode: AzMode) {
        let m = match mode {
            AzMode::LoggedIn => "logged-in",
            AzMode::LoggedOut => "logged-out",
            AzMode::Expired => "expired",
        };
        std::fs::write(self.dir.join("az-mode"), m).unwrap();
    }

    /// The argument lists `az` was called with, one per call.
    pub fn calls(&self) -> Vec<String> {
        self.read("az-calls")
    }

    /// The argument lists the `azd` stub was called with.
    pub fn azd_calls(&self) -> Vec<String> {
        self.read("azd-calls")
    }

    fn read(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Writes `dir/az`: the Azure CLI's answers to `account get-access-token`, per `az-mode`.
fn write_az_stub(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let script = format!(
        r#"#!/bin/sh
# Stand-in for the Azure CLI (tests only): answers `az account get-access-token` like az 2.x.
dir=$(dirname "$0")
printf '%s\n' "$*" >> "$dir/az-calls"
if [ "$1 $2" != "account get-access-token" ]; then
  echo "ERROR: 'unknown' is misspelled or not recognized by the system." >&2
  exit 2
fi
mode=$(cat "$dir/az-mode" 2>/dev/null || echo logged-in)
case "$mode" in
logged-in)
  exp=$(( $(date +%s) + 3600 ))
  printf '{{\n  "accessToken": "{token}",\n  "expiresOn": "%s",\n  "expires_on": %s,\n  "subscription": "33333333-4444-5555-6666-777777777777",\n  "tenant": "{tenant}",\n  "tokenType": "Bearer"\n}}\n' "$(date -d "@$exp" '+%Y-%m-%d %H:%M:%S.000000')" "$exp"
  ;;
logged-out)
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
  ;;
expired)
  echo "ERROR: AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2026-08-01T09:00:00.0000000Z and was inactive for 90.00:00:00. Trace ID: 5d1f0000-0000-4000-8000-000000000003 Correlation ID: 5d1f0000-0000-4000-8000-000000000004 Timestamp: 2026-11-30 12:00:00Z" >&2
  echo "Interactive authentication is needed. Please run:" >&2
  echo "az login --scope https://vault.azure.net/.default" >&2
  exit 1
  ;;
esac
"#,
        token = ACCESS_TOKEN,
        tenant = TENANT_ID,
    );
    let path = dir.join("az");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The SDK's developer-tools credential tries `azd` after `az`: a stub that is never
    // signed in keeps the tests independent of whatever azd the machine has.
    let azd = r#"#!/bin/sh
# Stand-in for the Azure Developer CLI (tests only): never signed in, as azd reports it.
printf '%s
' "$*" >> "$(dirname "$0")/azd-calls"
echo '{"type":"consoleMessage","timestamp":"2026-11-30T12:00:00Z","data":{"message":"
ERROR: not logged in, run `azd auth login` to login
"}}' >&2
exit 1
"#;
    let path = dir.join("azd");
    std::fs::write(&path, azd).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// === The child-process harness ===

/// The fixed process environment of a child.
#[derive(Debug, Clone, Copy)]
pub enum ChildEnv {
    /// No managed identity: `PATH` starts with the stub `az`.
    Laptop,
    /// As `Laptop`, plus App Service's `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`.
    AppService,
}

/// In the child: `true` (run the body). In the parent: writes the stub `az`, re-runs this
/// test alone in a child with exactly the `env` environment, waits at most 120 s (killing
/// it after), asserts it passed, and returns `false`.
pub fn in_child(test_name: &str, env: ChildEnv) -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return true;
    }
    let stubs = tempfile::tempdir().unwrap();
    write_az_stub(stubs.path());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env(CHILD_MARKER, "1")
        .env(STUB_DIR, stubs.path())
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.path().display()))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for keep in ["RUST_BACKTRACE", "TMPDIR", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    if let ChildEnv::AppService = env {
        cmd.env("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT)
            .env("IDENTITY_HEADER", IDENTITY_HEADER);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    let report = format!("--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("child test timed out\n{report}"));
    assert!(status.success(), "child test failed\n{report}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run exactly this test\n{report}"
    );
    false
}

/// A service principal certificate: RSA, self-signed, as `az ad sp create-for-rbac
/// --create-cert` makes one.
pub fn service_principal_certificate() -> Issued {
    CertSpec::leaf("mtls-handler-ci", now(), 30)
        .with_key(mtls_handler::tools::pki::KeyKind::Rsa2048)
        .self_signed()
        .unwrap()
}

/// `cert` and key in one PEM file, the key first, as the Azure CLI writes it.
pub fn write_pem_key_and_certificate(dir: &Path, leaf: &Issued) -> PathBuf {
    let mut pem = leaf.key_pem().unwrap();
    pem.extend(leaf.cert_pem().unwrap());
    let path = dir.join("service-principal.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

//! The outbound certificate from Key Vault with every credential `AZURE_CREDENTIAL` offers,
//! each through the official SDK against loopback stand-ins of the real endpoints, reached
//! through the SDK's documented options: a stub `az` on `PATH` (developer tools), a Microsoft
//! Entra token endpoint at `AZURE_AUTHORITY_HOST` (the SDK's cloud option; workload identity, client certificate,
//! client secret), App Service's identity endpoint at `IDENTITY_ENDPOINT` (managed
//! identity), and Key Vault with its 401 challenge. Each test re-runs itself in a child
//! process with a fixed environment (see `support/credentials.rs`).
//!
//! Plus the real binary: `handler outbound check` and the start-up log.

#[path = "support/outbound.rs"]
mod outbound_support;

#[path = "support/credentials.rs"]
mod credentials_support;

use credentials_support::*;
use mtls_handler::host::http_error::ApiError;
use mtls_handler::outbound::{Outbound, OutboundConfig, OutboundError};
use outbound_support::*;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

macro_rules! credential_test {
    ($name:ident, $env:expr, $body:expr) => {
        #[test]
        fn $name() {
            if !in_child(stringify!($name), $env) {
                return;
            }
            block_on($body);
        }
    };
}

struct World {
    pki: Pki,
    partner: Partner,
    identity: IdentityEndpoint,
    vault: Vault,
    entra: Entra,
    az: AzStub,
    dir: tempfile::TempDir,
    leaf: mtls_handler::tools::pki::Issued,
}

impl World {
    /// All stand-ins up, the vault holding one certificate (version `v1`), `az` logged in.
    async fn new() -> Self {
        let pki = Pki::new();
        let partner = Partner::start(&pki).await;
        let identity = IdentityEndpoint::start().await;
        let vault = Vault::start(&pki).await;
        let entra = Entra::start(&pki).await;
        let leaf = pki.client("outbound-from-key-vault");
        vault.add_pkcs12("v1", &leaf, &[&pki.client_ca.cert]);
        let az = AzStub::from_env();
        az.set(AzMode::LoggedIn);
        Self {
            pki,
            partner,
            identity,
            vault,
            entra,
            az,
            dir: tempfile::tempdir().unwrap(),
            leaf,
        }
    }

    /// Settings: the partner, the vault, `AZURE_AUTHORITY_HOST` (the Entra stand-in), plus
    /// `extra`; network overrides send every stand-in's host name to loopback.
    fn config(&self, extra: &[(&str, String)]) -> OutboundConfig {
        let ca = self.pki.write_server_ca(self.dir.path());
        let mut pairs: Vec<(&str, String)> = vec![
            ("REMOTE_API_URL", self.partner.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("KEY_VAULT_URL", VAULT_URL.into()),
            ("OUTBOUND_CLIENT_CERT_NAME", CERT_NAME.into()),
            ("AZURE_AUTHORITY_HOST", AUTHORITY_HOST.into()),
            // Generous for a loaded machine: failures answer as soon as the load fails.
            ("REMOTE_API_TIMEOUT_SECONDS", "10".into()),
        ];
        pairs.extend(extra.iter().cloned());
        let mut overrides =
            azure_overrides(&self.pki, self.vault.server.addr, self.identity.server.addr);
        overrides
            .resolve
            .push((AUTHORITY_HOST_NAME.to_owned(), self.entra.server.addr));
        config(&pairs, overrides)
    }

    fn start(&self, extra: &[(&str, String)]) -> Arc<Outbound> {
        Outbound::start(self.config(extra))
    }

    fn app_service(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT.into()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
        ]
    }

    fn service_principal(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("AZURE_TENANT_ID", TENANT_ID.into()),
        ]
    }

    /// The call succeeds, presenting the vault's certificate.
    async fn assert_key_vault_certificate_used(&self, out: &Outbound, credential: &str) {
        let ok = out.call().await.unwrap();
        assert_eq!(ok.source, "keyVault");
        assert_eq!(ok.certificate_thumbprint, thumbprint(&self.leaf.cert));
        assert_eq!(self.partner.presented(), vec![thumbprint(&self.leaf.cert)]);
        let status = out.status();
        assert_eq!(status.state, "ready");
        assert_eq!(status.credential, Some(credential));
        let tokens: Vec<String> = self
            .vault
            .server
            .seen()
            .iter()
            .filter_map(|s| s.header("authorization").map(str::to_owned))
            .collect();
        assert_eq!(tokens, vec![format!("Bearer {ACCESS_TOKEN}")]);
    }

    /// The call fails with 503 `outbound_identity_unavailable`; returns the `error` text,
    /// checked to name the vault, the certificate and the credential, and to hold no secret.
    async fn failure(&self, out: &Outbound, credential: &str) -> String {
        let e = out.call().await.unwrap_err();
        let a = ApiError::Outbound(e).to_answer();
        let body = a.body_json();
        assert_eq!(a.status.as_u16(), 503, "{body}");
        assert_eq!(body["code"], "outbound_identity_unavailable");
        assert!(self.partner.presented().is_empty());
        let msg = body["error"].as_str().unwrap().to_owned();
        assert!(
            msg.contains(VAULT_URL) && msg.contains(CERT_NAME),
            "names the vault and certificate: {msg}"
        );
        assert!(
            msg.contains(&format!("credential {credential} (")),
            "names the credential: {msg}"
        );
        for secret in [
            ACCESS_TOKEN,
            CLIENT_SECRET,
            IDENTITY_HEADER,
            FEDERATED_TOKEN,
        ] {
            assert!(!msg.contains(secret), "{secret} leaked: {msg}");
        }
        assert_eq!(out.status().credential, Some(credential));
        msg
    }

    fn assert_no_token_was_used(&self) {
        assert!(
            self.vault.authorized_paths().is_empty(),
            "no request reached the vault with a token"
        );
    }
}

// === Developer tools (the Azure CLI) ===

credential_test!(
    with_nothing_else_configured_the_az_login_token_reads_the_certificate,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let out = w.start(&[]);
        w.assert_key_vault_certificate_used(&out, "developer-tools")
            .await;
        // The SDK ran the CLI the documented way, for the scope the vault's challenge named.
        assert_eq!(
            w.az.calls(),
            vec![format!(
                "account get-access-token -o json --scope {VAULT_SCOPE}"
            )]
        );
        assert!(
            w.az.azd_calls().is_empty(),
            "az answered, so azd is not asked"
        );
        assert!(w.entra.server.seen().is_empty());
        assert!(w.identity.server.seen().is_empty());
    }
);

credential_test!(
    an_az_cli_that_is_not_logged_in_gives_a_503_that_says_run_az_login,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.az.set(AzMode::LoggedOut);
        let msg = w.failure(&w.start(&[]), "developer-tools").await;
        assert!(
            msg.contains("Please run 'az login' to setup account."),
            "the CLI's own words from the error's source chain: {msg}"
        );
        assert!(
            msg.contains("you are not signed in: run `az login`"),
            "{msg}"
        );
        // The SDK then asked azd (the second developer tool), and says so too.
        assert_eq!(w.az.azd_calls().len(), 1);
        assert!(
            msg.contains("not logged in, run `azd auth login` to login"),
            "{msg}"
        );
        assert!(!msg.contains("non-transport error"), "{msg}");
        w.assert_no_token_was_used();
    }
);

credential_test!(
    an_expired_az_session_gives_a_503_that_says_it_expired,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.az.set(AzMode::Expired);
        let msg = w.failure(&w.start(&[]), "developer-tools").await;
        assert!(
            msg.contains("AADSTS700082: The refresh token has expired due to inactivity"),
            "{msg}"
        );
        assert!(
            msg.contains("the Azure CLI session has expired: run `az login` again"),
            "{msg}"
        );
        w.assert_no_token_was_used();
    }
);

credential_test!(
    a_403_from_key_vault_says_who_needs_key_vault_secrets_user_on_which_vault,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.vault.set_mode(VaultMode::Status(403));
        let e = w.start(&[]).call().await.unwrap_err();
        let OutboundError::NoIdentity { message } = e else {
            panic!("{e:?}")
        };
        assert!(
            message.contains(&format!(
                "access denied (HTTP 403): the signed-in az/azd user needs Key Vault Secrets \
                 User on {VAULT_URL}"
            )),
            "{message}"
        );
    }
);

// === Workload identity (Container Apps, AKS) ===

credential_test!(
    workload_identity_exchanges_the_token_file_for_a_key_vault_token,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let token_file = w.dir.path().join("azure-identity-token");
        std::fs::write(&token_file, FEDERATED_TOKEN).unwrap();
        let mut extra = w.service_principal();
        extra.push((
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ));
        let out = w.start(&extra);
        w.assert_key_vault_certificate_used(&out, "workload-identity")
            .await;
        let requests = w.entra.requests();
        assert_eq!(requests.len(), 1);
        let (path, form) = &requests[0];
        assert_eq!(path, &format!("/{TENANT_ID}/oauth2/v2.0/token"));
        assert_eq!(form["client_assertion"], FEDERATED_TOKEN);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(form["client_id"], CLIENT_ID);
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], VAULT_SCOPE);
        assert!(w.az.calls().is_empty(), "auto chose one credential");
    }
);

credential_test!(
    an_unreadable_workload_identity_token_file_is_reported_and_no_other_credential_is_tried,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let missing = w
            .dir
            .path()
            .join("not-mounted")
            .join("azure-identity-token");
        let mut extra = w.service_principal();
        extra.push(("AZURE_FEDERATED_TOKEN_FILE", missing.display().to_string()));
        let msg = w.failure(&w.start(&extra), "workload-identity").await;
        assert!(
            msg.contains(&format!(
                "failed to read federated token from file {}",
                missing.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains("AZURE_FEDERATED_TOKEN_FILE cannot be read"),
            "{msg}"
        );
        assert!(w.entra.server.seen().is_empty());
        assert!(
            w.az.calls().is_empty(),
            "a logged-in az must not stand in for the failed workload identity"
        );
        w.assert_no_token_was_used();
    }
);

// === Service principal: client secret ===

credential_test!(
    a_service_principal_secret_gets_the_token_from_entra,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()));
        let out = w.start(&extra);
        w.assert_key_vault_certificate_used(&out, "client-secret")
            .await;
        let requests = w.entra.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1["client_secret"], CLIENT_SECRET);
        assert_eq!(requests[0].1["scope"], VAULT_SCOPE);
        assert!(w.az.calls().is_empty());
    }
);

credential_test!(
    a_wrong_tenant_is_reported_with_aadsts90002_and_what_to_check,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let out = w.start(&[
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("AZURE_TENANT_ID", "contoso-typo.onmicrosoft.com".into()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
        ]);
        let msg = w.failure(&out, "client-secret").await;
        assert!(
            msg.contains("AADSTS90002: Tenant 'contoso-typo.onmicrosoft.com' not found"),
            "Entra's words from the error's source chain: {msg}"
        );
        assert!(
            msg.contains(
                "tenant \"contoso-typo.onmicrosoft.com\" was not found: check AZURE_TENANT_ID"
            ),
            "{msg}"
        );
        assert!(!msg.contains("non-transport error"), "{msg}");
        w.assert_no_token_was_used();
    }
);

credential_test!(
    a_wrong_client_secret_is_reported_with_what_to_do,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_SECRET", "an-old-secret".into()));
        let msg = w.failure(&w.start(&extra), "client-secret").await;
        assert!(msg.contains("AADSTS7000215"), "{msg}");
        assert!(
            msg.contains("the client secret is wrong or expired"),
            "{msg}"
        );
        assert!(!msg.contains("an-old-secret"), "{msg}");
    }
);

// === Service principal: client certificate ===

credential_test!(
    a_service_principal_pem_certificate_signs_the_assertion_entra_verifies,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let sp = service_principal_certificate();
        w.entra.register(&sp.cert);
        let pem = write_pem_key_and_certificate(w.dir.path(), &sp);
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_CERTIFICATE_PATH", pem.display().to_string()));
        let out = w.start(&extra);
        w.assert_key_vault_certificate_used(&out, "client-certificate")
            .await;
        let requests = w.entra.requests();
        assert_eq!(requests.len(), 1);
        assert!(!requests[0].1.contains_key("client_secret"));
        assert!(w.az.calls().is_empty());
    }
);

credential_test!(
    a_service_principal_pkcs12_with_a_password_works_too,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let sp = service_principal_certificate();
        w.entra.register(&sp.cert);
        let pfx = w.dir.path().join("sp.pfx");
        std::fs::write(&pfx, sp.pkcs12("pfx-pw", &[]).unwrap()).unwrap();
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_CERTIFICATE_PATH", pfx.display().to_string()));
        extra.push(("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-pw".into()));
        let out = w.start(&extra);
        w.assert_key_vault_certificate_used(&out, "client-certificate")
            .await;
    }
);

credential_test!(
    a_certificate_not_registered_on_the_application_is_reported,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.entra.register(&service_principal_certificate().cert);
        let other = service_principal_certificate();
        let pem = write_pem_key_and_certificate(w.dir.path(), &other);
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_CERTIFICATE_PATH", pem.display().to_string()));
        let msg = w.failure(&w.start(&extra), "client-certificate").await;
        assert!(msg.contains("AADSTS700027"), "{msg}");
        assert!(msg.contains("is not registered on application"), "{msg}");
    }
);

credential_test!(
    a_service_principal_certificate_without_an_rsa_key_is_refused_before_any_request,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        // Pki client certificates have EC P-256 keys.
        let ec = w.pki.client("ec-service-principal");
        let pem = write_pem_key_and_certificate(w.dir.path(), &ec);
        let mut extra = w.service_principal();
        extra.push(("AZURE_CLIENT_CERTIFICATE_PATH", pem.display().to_string()));
        let msg = w.failure(&w.start(&extra), "client-certificate").await;
        assert!(msg.contains("the key is not RSA"), "{msg}");
        assert!(w.entra.server.seen().is_empty());
    }
);

// === Managed identity (App Service / Functions) ===

credential_test!(
    on_app_service_auto_uses_the_managed_identity_and_never_asks_az,
    ChildEnv::AppService,
    async {
        let w = World::new().await;
        let out = w.start(&w.app_service());
        w.assert_key_vault_certificate_used(&out, "managed-identity")
            .await;
        assert_eq!(w.identity.server.seen().len(), 1);
        assert!(w.az.calls().is_empty());
        assert!(w.entra.server.seen().is_empty());
    }
);

credential_test!(
    a_failing_managed_identity_is_reported_and_not_replaced_by_the_az_login,
    ChildEnv::AppService,
    async {
        let w = World::new().await;
        w.identity.set(IdentityMode::Status(400));
        let msg = w
            .failure(&w.start(&w.app_service()), "managed-identity")
            .await;
        assert!(msg.contains("ManagedIdentityCredential"), "{msg}");
        assert!(
            msg.contains("check that the app has a managed identity"),
            "{msg}"
        );
        assert!(
            w.az.calls().is_empty(),
            "az is logged in but must not be used"
        );
        w.assert_no_token_was_used();
    }
);

// === `outbound check` (the library function the command prints) ===

credential_test!(
    outbound_check_prints_credential_vault_version_thumbprint_and_not_after,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        let report = mtls_handler::outbound::check::check(&w.config(&[]), now()).await;
        assert!(report.ok, "{}", report.text);
        let t = &report.text;
        for want in [
            "credential:  developer-tools (".to_owned(),
            "why:         AZURE_CREDENTIAL=auto: no managed identity".to_owned(),
            format!("vault:       {VAULT_URL}"),
            format!("certificate: {CERT_NAME}"),
            "version:     v1".to_owned(),
            format!("thumbprint:  {}", thumbprint(&w.leaf.cert)),
            "notAfter:    ".to_owned(),
        ] {
            assert!(t.contains(&want), "missing {want:?} in\n{t}");
        }
    }
);

credential_test!(
    outbound_check_says_why_not_when_the_credential_fails,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.az.set(AzMode::LoggedOut);
        let report = mtls_handler::outbound::check::check(&w.config(&[]), now()).await;
        assert!(!report.ok);
        assert!(
            report.text.contains("Not loaded")
                && report
                    .text
                    .contains("Please run 'az login' to setup account."),
            "{}",
            report.text
        );
    }
);

credential_test!(
    outbound_check_passes_on_the_file_fallback_but_warns_about_key_vault,
    ChildEnv::Laptop,
    async {
        let w = World::new().await;
        w.vault.set_mode(VaultMode::Status(403));
        let file = w.pki.client("outbound-file-fallback");
        let path = w.dir.path().join("fallback.pfx");
        std::fs::write(&path, file.pkcs12("", &[]).unwrap()).unwrap();
        let config = w.config(&[("OUTBOUND_CLIENT_CERT_PATH", path.display().to_string())]);
        let report = mtls_handler::outbound::check::check(&config, now()).await;
        assert!(report.ok, "{}", report.text);
        let t = &report.text;
        assert!(
            t.contains(&format!("thumbprint:  {}", thumbprint(&file.cert))),
            "{t}"
        );
        assert!(
            t.contains("warning:") && t.contains("access denied (HTTP 403)"),
            "{t}"
        );
    }
);

// === The real binary ===

fn handler(env: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs to exit within 30 s; returns (exit code, stdout, stderr).
fn run(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn handler_outbound_check_exits_0_with_a_certificate_and_1_without() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.client("outbound-check-file");
    let pfx = dir.path().join("outbound.pfx");
    std::fs::write(&pfx, leaf.pkcs12("", &[]).unwrap()).unwrap();

    let (code, out, err) = run(handler(
        &[("OUTBOUND_CLIENT_CERT_PATH", pfx.display().to_string())],
        &["outbound", "check"],
    ));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("thumbprint:  {}", thumbprint(&leaf.cert))),
        "{out}"
    );
    assert!(out.contains("notAfter:    "), "{out}");

    let (code, out, _) = run(handler(&[], &["outbound", "check"]));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("no outbound client certificate is configured"),
        "{out}"
    );

    let (code, _, err) = run(handler(
        &[
            ("KEY_VAULT_URL", VAULT_URL.into()),
            ("OUTBOUND_CLIENT_CERT_NAME", CERT_NAME.into()),
            ("AZURE_CREDENTIAL", "azure-cli".into()),
        ],
        &["outbound", "check"],
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("setting AZURE_CREDENTIAL"), "{err}");
}

#[test]
fn handler_outbound_check_names_the_credential_and_why_key_vault_failed() {
    let port = closed_port();
    let (code, out, err) = run(handler(
        &[
            ("KEY_VAULT_URL", format!("https://127.0.0.1:{port}")),
            ("OUTBOUND_CLIENT_CERT_NAME", CERT_NAME.into()),
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("AZURE_TENANT_ID", TENANT_ID.into()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("REMOTE_API_TIMEOUT_SECONDS", "5".into()),
        ],
        &["outbound", "check"],
    ));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("credential:  client-secret (service principal, tenant"),
        "{out}"
    );
    assert!(
        out.contains("why:         AZURE_CREDENTIAL=auto: AZURE_CLIENT_SECRET is set"),
        "{out}"
    );
    assert!(out.contains("cannot reach Key Vault"), "{out}");
    assert!(!out.contains(CLIENT_SECRET) && !err.contains(CLIENT_SECRET));
}

#[test]
fn the_start_up_log_and_health_name_the_credential_and_why_but_never_the_secret() {
    let port = closed_port();
    let http_port = closed_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = handler(
        &[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", http_port.to_string()),
            ("KEY_VAULT_URL", format!("https://127.0.0.1:{port}")),
            ("OUTBOUND_CLIENT_CERT_NAME", CERT_NAME.into()),
            ("AZURE_CREDENTIAL", "client-secret".into()),
            ("AZURE_CLIENT_ID", CLIENT_ID.into()),
            ("AZURE_TENANT_ID", TENANT_ID.into()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("RUST_LOG", "info".into()),
            ("LOG_FORMAT", "json".into()),
        ],
        &[],
    );
    let mut child = cmd
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    // Wait (bounded) for the loader to give up on the unreachable vault.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log().contains("outbound certificate could not be loaded") {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--retry",
            "5",
            "--retry-connrefused",
        ])
        .arg(format!("http://127.0.0.1:{http_port}/api/health"))
        .output();
    let _ = child.kill();
    let _ = child.wait();
    let text = read_log();
    let chosen = text
        .lines()
        .find(|l| l.contains("Azure credential chosen"))
        .unwrap_or_else(|| panic!("no credential line in\n{text}"));
    let line: serde_json::Value = serde_json::from_str(chosen).unwrap();
    assert_eq!(line["credential"], "client-secret", "{chosen}");
    assert_eq!(line["reason"], "AZURE_CREDENTIAL=client-secret", "{chosen}");
    assert!(
        !text.contains(CLIENT_SECRET),
        "the secret leaked into\n{text}"
    );
    let health = health.expect("curl");
    let body: serde_json::Value = serde_json::from_slice(&health.stdout)
        .unwrap_or_else(|_| panic!("health: {}", String::from_utf8_lossy(&health.stdout)));
    assert_eq!(body["outboundCertificate"]["credential"], "client-secret");
    assert_eq!(body["outboundCertificate"]["state"], "unavailable");
}

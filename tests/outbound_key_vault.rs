//! Outbound mTLS with the certificate from Key Vault, read through the official SDK with
//! App Service's managed identity, against loopback stand-ins speaking the real protocols
//! (token endpoint over http; Key Vault over https as `myvault.vault.azure.net`, with its
//! 401 Bearer challenge). Each test re-runs itself in a child process whose environment
//! holds `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` (and, for the proxy tests, the proxy
//! variables); the child's logs are captured and checked for secrets (see
//! `support/outbound.rs`).

#[path = "support/outbound.rs"]
mod outbound_support;

use mtls_handler::host::http_error::ApiError;
use mtls_handler::outbound::{Outbound, OutboundConfig, OutboundError};
use outbound_support::*;
use std::sync::Arc;
use std::time::Duration;

macro_rules! managed_identity_test {
    ($(#[$meta:meta])* $name:ident, $body:expr) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            if !in_managed_identity_env(stringify!($name)) {
                return;
            }
            block_on($body);
        }
    };
}

/// As `managed_identity_test!`, with `$env` (computed in the parent) set in the child.
macro_rules! managed_identity_test_with_env {
    ($(#[$meta:meta])* $name:ident, $env:expr, $body:expr) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            if !in_child_env(stringify!($name), &$env) {
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
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let pki = Pki::new();
        let partner = Partner::start(&pki).await;
        let identity = IdentityEndpoint::start().await;
        let vault = Vault::start(&pki).await;
        Self {
            pki,
            partner,
            identity,
            vault,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, extra: &[(&str, String)]) -> OutboundConfig {
        let ca = self.pki.write_server_ca(self.dir.path());
        let mut pairs: Vec<(&str, String)> = vec![
            ("REMOTE_API_URL", self.partner.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("KEY_VAULT_URL", format!("{VAULT_URL}/")),
            ("OUTBOUND_CLIENT_CERT_NAME", CERT_NAME.into()),
            ("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT.into()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
        ];
        pairs.extend(extra.iter().cloned());
        config(
            &pairs,
            azure_overrides(&self.pki, self.vault.server.addr, self.identity.server.addr),
        )
    }

    fn start(&self, extra: &[(&str, String)]) -> Arc<Outbound> {
        Outbound::start(self.config(extra))
    }
}

fn answer(e: OutboundError) -> (u16, serde_json::Value) {
    let a = ApiError::Outbound(e).to_answer();
    (a.status.as_u16(), a.body_json())
}

async fn failure_message(w: &World) -> String {
    let out = w.start(&[]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "outbound_identity_unavailable");
    assert!(w.partner.presented().is_empty());
    let msg = body["error"].as_str().unwrap().to_owned();
    assert!(msg.contains(VAULT_URL) && msg.contains(CERT_NAME), "{msg}");
    assert!(
        !msg.contains(ACCESS_TOKEN) && !msg.contains(IDENTITY_HEADER),
        "{msg}"
    );
    msg
}

managed_identity_test!(
    a_pkcs12_certificate_from_key_vault_is_presented_to_the_partner,
    async {
        let w = World::new().await;
        let leaf = w.pki.client("outbound-kv");
        w.vault.add_pkcs12("v1", &leaf, &[&w.pki.client_ca.cert]);
        let out = w.start(&[]);

        let ok = out.call().await.unwrap();
        assert_eq!(ok.status_code, 200);
        assert_eq!(ok.source, "keyVault");
        assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
        assert_eq!(w.partner.presented(), vec![thumbprint(&leaf.cert)]);
        let status = out.status();
        assert_eq!((status.state, status.source), ("ready", Some("keyVault")));

        // The documented wire protocol: an unauthenticated request, the challenge, a token
        // for the challenge's resource from the App Service endpoint, then the secret.
        let token_requests = w.identity.server.seen();
        assert_eq!(token_requests.len(), 1);
        let t = &token_requests[0];
        assert_eq!(t.query("api-version").as_deref(), Some("2019-08-01"));
        assert_eq!(
            t.query("resource").as_deref(),
            Some("https://vault.azure.net")
        );
        assert_eq!(t.header("x-identity-header"), Some(IDENTITY_HEADER));
        assert_eq!(t.query("client_id"), None);
        let vault_requests = w.vault.server.seen();
        assert!(vault_requests[0].header("authorization").is_none());
        assert_eq!(
            w.vault.authorized_paths()[0].split('?').next(),
            Some(format!("/secrets/{CERT_NAME}/").as_str())
        );
    }
);

managed_identity_test!(
    a_user_assigned_identity_is_selected_by_azure_client_id_and_a_version_by_setting,
    async {
        let w = World::new().await;
        let old = w.pki.client("outbound-old");
        let new = w.pki.client("outbound-new");
        w.vault
            .add_pkcs12("0ld0000000000000000000000000000a", &old, &[]);
        w.vault.add_pkcs12("new", &new, &[]);
        let out = w.start(&[
            (
                "AZURE_CLIENT_ID",
                "11111111-2222-3333-4444-555555555555".into(),
            ),
            (
                "OUTBOUND_CLIENT_CERT_VERSION",
                "0ld0000000000000000000000000000a".into(),
            ),
        ]);
        let ok = out.call().await.unwrap();
        assert_eq!(ok.certificate_thumbprint, thumbprint(&old.cert));
        assert_eq!(
            w.identity.server.seen()[0].query("client_id").as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert!(w.vault.authorized_paths()[0].starts_with(&format!(
            "/secrets/{CERT_NAME}/0ld0000000000000000000000000000a?"
        )));
    }
);

managed_identity_test!(a_pem_secret_from_key_vault_works, async {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-kv-pem");
    let mut pem = String::from_utf8(leaf.cert_pem().unwrap()).unwrap();
    pem.push_str(&String::from_utf8(leaf.key_pem().unwrap()).unwrap());
    w.vault.add_raw("p1", "application/x-pem-file", &pem);
    let ok = w.start(&[]).call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
});

managed_identity_test!(a_legacy_pkcs12_export_from_key_vault_loads, async {
    use base64::Engine as _;
    let w = World::new().await;
    let leaf = w.pki.client("outbound-kv-legacy");
    let der = legacy_pkcs12(w.dir.path(), &leaf, "");
    w.vault.add_raw(
        "l1",
        "application/x-pkcs12",
        &base64::engine::general_purpose::STANDARD.encode(der),
    );
    let ok = w.start(&[]).call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
});

managed_identity_test!(key_vault_403_is_reported_as_access_denied, async {
    let w = World::new().await;
    w.vault.set_mode(VaultMode::Status(403));
    let msg = failure_message(&w).await;
    assert!(msg.contains("access denied (HTTP 403)"), "{msg}");
});

managed_identity_test!(key_vault_401_even_with_a_token_is_reported, async {
    let w = World::new().await;
    w.vault.set_mode(VaultMode::Status(401));
    let msg = failure_message(&w).await;
    assert!(msg.contains("401"), "{msg}");
});

managed_identity_test!(a_missing_certificate_is_reported_as_not_found, async {
    let w = World::new().await;
    let msg = failure_message(&w).await;
    assert!(msg.contains("not found (HTTP 404)"), "{msg}");
});

/// Starts with no background retry in sight, so every vault request counted comes from
/// the first load.
fn start_without_background_retries(w: &World) -> Arc<Outbound> {
    let mut c = w.config(&[]);
    c.retry_first = Duration::from_secs(600);
    c.retry_max = Duration::from_secs(600);
    c.retry_on_request_after = Duration::from_secs(600);
    Outbound::start(c)
}

managed_identity_test!(
    a_key_vault_server_error_is_retried_exactly_twice_then_reported,
    async {
        let w = World::new().await;
        w.vault.set_mode(VaultMode::Status(500));
        let out = start_without_background_retries(&w);
        let (status, body) = answer(out.call().await.unwrap_err());
        assert_eq!(status, 503, "{body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains("HTTP 500"), "{msg}");
        // The README: "Key Vault reads retry at most twice": one read, two retries.
        assert_eq!(w.vault.authorized_paths().len(), 3);
    }
);

managed_identity_test!(a_key_vault_403_is_not_retried, async {
    let w = World::new().await;
    w.vault.set_mode(VaultMode::Status(403));
    let out = start_without_background_retries(&w);
    assert!(out.call().await.is_err());
    assert_eq!(w.vault.authorized_paths().len(), 1);
});

managed_identity_test!(
    a_down_identity_endpoint_is_reported_as_a_managed_identity_failure,
    async {
        let w = World::new().await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut c = w.config(&[]);
        c.overrides = azure_overrides(&w.pki, w.vault.server.addr, closed);
        let out = Outbound::start(c);
        let (status, body) = answer(out.call().await.unwrap_err());
        assert_eq!(status, 503);
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains("managed identity"), "{msg}");
    }
);

managed_identity_test!(an_identity_endpoint_error_is_reported, async {
    let w = World::new().await;
    w.identity.set(IdentityMode::Status(400));
    let msg = failure_message(&w).await;
    assert!(msg.contains("managed identity"), "{msg}");
});

managed_identity_test!(
    a_slow_identity_endpoint_times_out_within_the_call_timeout,
    async {
        let w = World::new().await;
        w.identity.set(IdentityMode::Slow(Duration::from_secs(30)));
        let out = w.start(&[("REMOTE_API_TIMEOUT_SECONDS", "1".into())]);
        let started = std::time::Instant::now();
        let (status, body) = answer(out.call().await.unwrap_err());
        let waited = started.elapsed();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "outbound_identity_loading", "{body}");
        // Bounded by the 1 s call timeout, not by the 30 s the endpoint stalls (the margin
        // is for a loaded machine).
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
        // Then the load itself reports its timeout.
        let msg = eventually(Duration::from_secs(10), || {
            let out = out.clone();
            async move {
                match out.call().await {
                    Err(OutboundError::NoIdentity { message }) => Some(message),
                    _ => None,
                }
            }
        })
        .await
        .expect("a failure message");
        assert!(msg.contains("timed out after 1s"), "{msg}");
    }
);

managed_identity_test!(a_slow_key_vault_times_out, async {
    let w = World::new().await;
    w.vault.add_pkcs12("v1", &w.pki.client("outbound-kv"), &[]);
    w.vault.set_mode(VaultMode::Slow(Duration::from_secs(30)));
    let out = w.start(&[("REMOTE_API_TIMEOUT_SECONDS", "1".into())]);
    let msg = eventually(Duration::from_secs(10), || {
        let out = out.clone();
        async move {
            match out.call().await {
                Err(OutboundError::NoIdentity { message }) => Some(message),
                _ => None,
            }
        }
    })
    .await
    .expect("a failure message");
    assert!(msg.contains("timed out after 1s"), "{msg}");
});

managed_identity_test!(a_challenge_naming_another_resource_is_refused, async {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-kv");
    w.vault.add_pkcs12("v1", &leaf, &[]);
    w.vault.set_mode(VaultMode::WrongChallengeResource);
    failure_message(&w).await;
    assert!(
        w.identity.server.seen().is_empty(),
        "no token may be fetched for evil.example"
    );
});

managed_identity_test!(a_request_during_a_slow_first_load_waits_for_it, async {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-kv-slow");
    w.vault.add_pkcs12("v1", &leaf, &[]);
    w.identity
        .set(IdentityMode::Slow(Duration::from_millis(800)));
    let out = w.start(&[]);
    assert_eq!(out.status().state, "loading");
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
});

managed_identity_test!(when_key_vault_fails_the_file_is_used_instead, async {
    let w = World::new().await;
    w.vault.set_mode(VaultMode::Status(403));
    let leaf = w.pki.client("outbound-file-fallback");
    let path = w.dir.path().join("fallback.pfx");
    std::fs::write(&path, leaf.pkcs12("", &[]).unwrap()).unwrap();
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path.display().to_string())]);
    let ok = out.call().await.unwrap();
    assert_eq!(ok.source, "file");
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
});

managed_identity_test!(
    a_new_certificate_version_in_key_vault_is_picked_up_while_running,
    async {
        let w = World::new().await;
        let first = w.pki.client("outbound-v1");
        let second = w.pki.client("outbound-v2");
        w.vault.add_pkcs12("v1", &first, &[]);
        let mut c = w.config(&[]);
        c.refresh = Duration::from_millis(300);
        let out = Outbound::start(c);
        assert_eq!(
            out.call().await.unwrap().certificate_thumbprint,
            thumbprint(&first.cert)
        );

        w.vault.add_pkcs12("v2", &second, &[]);
        let want = thumbprint(&second.cert);
        let rotated = eventually(Duration::from_secs(10), || {
            let out = out.clone();
            let want = want.clone();
            async move {
                let ok = out.call().await.ok()?;
                (ok.certificate_thumbprint == want).then_some(())
            }
        })
        .await;
        assert!(rotated.is_some(), "the refresh never picked up v2");
        assert_eq!(w.partner.presented().last(), Some(&want));
        assert_eq!(out.status().thumbprint.as_deref(), Some(want.as_str()));
    }
);

/// The loader's log line once a refresh failed and the current certificate was kept.
const KEPT: &str = "outbound certificate refresh failed; keeping the current one";

managed_identity_test!(a_failed_refresh_keeps_the_current_certificate, async {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-kept");
    w.vault.add_pkcs12("v1", &leaf, &[]);
    let mut c = w.config(&[]);
    c.refresh = Duration::from_millis(200);
    let out = Outbound::start(c);
    out.call().await.unwrap();
    w.vault.set_mode(VaultMode::Status(503));
    // Wait until a refresh has failed against the 503 *and* its outcome was published
    // (the SDK's retries are over).
    assert!(
        child_logs().wait_for(KEPT, Duration::from_secs(15)).await,
        "no refresh failed"
    );
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
    assert_eq!(ok.source, "keyVault");
    assert_eq!(out.status().state, "ready");
});

managed_identity_test!(
    a_brief_key_vault_failure_keeps_the_key_vault_certificate_rather_than_the_file,
    async {
        let w = World::new().await;
        let from_vault = w.pki.client("outbound-kv-current");
        w.vault.add_pkcs12("v1", &from_vault, &[]);
        let fallback = w.pki.client("outbound-file-fallback");
        let path = w.dir.path().join("fallback.pfx");
        std::fs::write(&path, fallback.pkcs12("", &[]).unwrap()).unwrap();
        let mut c = w.config(&[("OUTBOUND_CLIENT_CERT_PATH", path.display().to_string())]);
        c.refresh = Duration::from_millis(200);
        let out = Outbound::start(c);
        let ok = out.call().await.unwrap();
        assert_eq!(ok.source, "keyVault");

        w.vault.set_mode(VaultMode::Status(503));
        assert!(
            child_logs().wait_for(KEPT, Duration::from_secs(15)).await,
            "the Key Vault failure did not keep the Key Vault certificate"
        );
        let ok = out.call().await.unwrap();
        assert_eq!(
            (ok.source, ok.certificate_thumbprint.as_str()),
            ("keyVault", thumbprint(&from_vault.cert).as_str())
        );
        assert_eq!(out.status().source, Some("keyVault"));
        assert!(!w.partner.presented().contains(&thumbprint(&fallback.cert)));
    }
);

/// The parent picks the proxy's port (the child binds it) and sets every proxy variable.
fn proxy_env() -> Vec<(&'static str, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    vec![
        ("HTTP_PROXY", url.clone()),
        ("HTTPS_PROXY", url.clone()),
        ("ALL_PROXY", url),
    ]
}

/// The child's proxy stand-in, on the port the parent chose, tunnelling the vault's name to
/// the vault stand-in.
async fn proxy_from_env(w: &World) -> ProxyStandIn {
    let url = std::env::var("HTTPS_PROXY").unwrap();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    ProxyStandIn::start_on(listener, vec![(VAULT_HOST.into(), w.vault.server.addr)])
}

managed_identity_test_with_env!(
    behind_a_proxy_the_identity_endpoint_is_called_directly_and_key_vault_through_the_proxy,
    proxy_env(),
    async {
        let w = World::new().await;
        let proxy = proxy_from_env(&w).await;
        let leaf = w.pki.client("outbound-behind-proxy");
        w.vault.add_pkcs12("v1", &leaf, &[]);
        let out = w.start(&[
            ("HTTPS_PROXY", proxy.url()),
            ("HTTP_PROXY", proxy.url()),
            ("ALL_PROXY", proxy.url()),
        ]);
        let ok = out.call().await.unwrap();
        assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));

        let heads = proxy.heads();
        for head in &heads {
            let lower = head.to_ascii_lowercase();
            assert!(
                !lower.contains("x-identity-header")
                    && !head.contains(IDENTITY_HEADER)
                    && !lower.contains(IDENTITY_HOST),
                "the identity request went to the proxy: {head}"
            );
        }
        assert_eq!(w.identity.server.seen().len(), 1, "token fetched directly");
        // Key Vault honours HTTPS_PROXY, as the Azure SDKs do: a CONNECT tunnel, so the
        // proxy sees the host name only.
        assert!(
            heads
                .iter()
                .any(|h| h.starts_with(&format!("CONNECT {VAULT_HOST}:443 "))),
            "{heads:?}"
        );
        assert!(heads.iter().all(|h| !h.contains(ACCESS_TOKEN)));
        // The partner is on loopback: never through a proxy.
        assert!(heads.iter().all(|h| !h.contains("127.0.0.1")), "{heads:?}");
        assert_eq!(w.partner.presented(), vec![thumbprint(&leaf.cert)]);
    }
);

managed_identity_test_with_env!(
    no_proxy_sends_key_vault_past_the_proxy,
    proxy_env(),
    async {
        let w = World::new().await;
        let proxy = proxy_from_env(&w).await;
        let leaf = w.pki.client("outbound-no-proxy");
        w.vault.add_pkcs12("v1", &leaf, &[]);
        let out = w.start(&[
            ("HTTPS_PROXY", proxy.url()),
            ("NO_PROXY", "example.org, .azure.net".into()),
        ]);
        let ok = out.call().await.unwrap();
        assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
        assert!(proxy.heads().is_empty(), "{:?}", proxy.heads());
    }
);

//! The partners document kept in a Key Vault secret (`CLIENT_CERT_PARTNERS_SECRET`), read
//! with the outbound certificate's Key Vault reader and credential (App Service managed
//! identity), against the loopback Key Vault and token stand-ins of `support/outbound.rs`:
//! loaded at start-up, re-read at the refresh, a bad or unreadable reload keeps the
//! previous document, and a secret that cannot be read or parsed stops start-up naming the
//! setting. Each test re-runs itself in a child process (see `support/outbound.rs`), whose
//! logs are checked for the secret values the vault served.

#[path = "support/outbound.rs"]
mod outbound_support;

use mtls_handler::host::start::partner_secrets;
use mtls_handler::inbound::client_cert::Thumbprint;
use mtls_handler::inbound::config::InboundConfig;
use mtls_handler::inbound::partner_source::{self, SecretText};
use mtls_handler::inbound::InboundGate;
use mtls_handler::settings::ConfigError;
use mtls_handler::tools::pki::Issued;
use outbound_support::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

macro_rules! managed_identity_test {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            if !in_managed_identity_env(stringify!($name)) {
                return;
            }
            block_on($body);
        }
    };
}

/// The refresh interval in these tests (the setting's unit is minutes).
const REFRESH: Duration = Duration::from_millis(200);
/// How long a test waits for a refresh to show.
const WAIT: Duration = Duration::from_secs(20);

struct World {
    pki: Pki,
    _identity: IdentityEndpoint,
    vault: Vault,
    _dir: tempfile::TempDir,
    env: HashMap<String, String>,
    overrides: mtls_handler::outbound::NetworkOverrides,
    fabrikam: Issued,
    northwind: Issued,
}

impl World {
    /// The vault holds the partners document in the secret `CERT_NAME` (the stand-in serves
    /// that one name); no outbound certificate is configured.
    async fn new() -> Self {
        let pki = Pki::new();
        let identity = IdentityEndpoint::start().await;
        let vault = Vault::start(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("client-ca.pem");
        std::fs::write(&ca, pki.client_ca.cert_pem().unwrap()).unwrap();
        let env: HashMap<String, String> = [
            ("CLIENT_CERT_CA_PATH", ca.display().to_string()),
            ("KEY_VAULT_URL", format!("{VAULT_URL}/")),
            ("CLIENT_CERT_PARTNERS_SECRET", CERT_NAME.to_owned()),
            ("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT.to_owned()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
            ("REMOTE_API_TIMEOUT_SECONDS", "3".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let overrides = azure_overrides(&pki, vault.server.addr, identity.server.addr);
        Self {
            fabrikam: pki.client("api.fabrikam.example"),
            northwind: pki.client("api.northwind.example"),
            pki,
            _identity: identity,
            vault,
            _dir: dir,
            env,
            overrides,
        }
    }

    /// Fabrikam, and Northwind too when `with_northwind`.
    fn document(&self, with_northwind: bool) -> String {
        let issuer = Thumbprint::of_der(&self.pki.client_ca.der()).1.to_string();
        let mut partners = vec![json!({"name": "Fabrikam", "issuer": issuer,
            "match": {"commonName": "api.fabrikam.example"}, "functions": ["cert-info"]})];
        if with_northwind {
            partners.push(json!({"name": "Northwind", "issuer": issuer,
                "match": {"commonName": "api.northwind.example"}, "functions": ["*"]}));
        }
        json!({ "partners": partners }).to_string()
    }

    /// Start-up as `handler serve` does it: the settings, the Key Vault reader, the gate.
    async fn start(&self) -> Result<(Arc<InboundGate>, Option<Arc<dyn SecretText>>), ConfigError> {
        let inbound = InboundConfig::from_env(&self.env)?;
        let mut outbound = mtls_handler::outbound::OutboundConfig::from_env(&self.env)?;
        outbound.overrides = self.overrides.clone();
        assert!(
            outbound.key_vault.is_none(),
            "no outbound certificate is configured"
        );
        let secrets = partner_secrets(&outbound, inbound.partners.as_ref())?;
        let gate = InboundGate::from_config_with_secrets(&inbound, secrets.as_deref()).await?;
        Ok((Arc::new(gate), secrets))
    }

    /// Starts the refresher as `handler serve` does, with a short refresh interval.
    async fn serve(&self) -> (Arc<InboundGate>, tokio::task::JoinHandle<()>) {
        let (gate, secrets) = self.start().await.unwrap();
        let inbound = InboundConfig::from_env(&self.env).unwrap();
        let task = partner_source::spawn_with(
            gate.clone(),
            mtls_handler::clock::system_clock,
            inbound.partners.as_ref().unwrap(),
            secrets,
            REFRESH,
        )
        .unwrap();
        (gate, task)
    }
}

/// The partner `cert` is accepted as, or the refusal's text.
fn partner_of(gate: &InboundGate, cert: &Issued) -> Result<String, String> {
    gate.check(&[cert.header_value()], now())
        .map(|a| a.partner.name.clone())
        .map_err(|e| e.to_string())
}

fn last_reload_error(gate: &InboundGate) -> Option<String> {
    let status = gate.partners().unwrap().status(now());
    status.last_reload_error.map(|e| e.error)
}

managed_identity_test!(
    the_partners_document_in_a_key_vault_secret_is_enforced_from_start_up,
    async {
        let w = World::new().await;
        w.vault
            .add_raw("v1", "application/json", &w.document(false));
        let (gate, _) = w.start().await.unwrap();

        assert_eq!(partner_of(&gate, &w.fabrikam).as_deref(), Ok("Fabrikam"));
        assert!(partner_of(&gate, &w.northwind).is_err());
        let status = gate.partners().unwrap().status(now());
        assert_eq!(
            status.source,
            format!("Key Vault secret {CERT_NAME} in {VAULT_URL}")
        );
        assert!(
            w.vault
                .authorized_paths()
                .iter()
                .any(|p| p.starts_with(&format!("/secrets/{CERT_NAME}"))),
            "{:?}",
            w.vault.authorized_paths()
        );
    }
);

managed_identity_test!(
    a_new_version_of_the_secret_takes_effect_at_the_refresh_without_a_restart,
    async {
        let w = World::new().await;
        w.vault
            .add_raw("v1", "application/json", &w.document(false));
        let (gate, task) = w.serve().await;
        assert!(partner_of(&gate, &w.northwind).is_err());

        w.vault.add_raw("v2", "application/json", &w.document(true));
        let seen = eventually(WAIT, || async { partner_of(&gate, &w.northwind).ok() }).await;
        assert_eq!(seen.as_deref(), Some("Northwind"));
        assert_eq!(partner_of(&gate, &w.fabrikam).as_deref(), Ok("Fabrikam"));
        assert!(child_logs().count("partners document reloaded") >= 1);
        task.abort();
    }
);

managed_identity_test!(
    a_bad_or_unreadable_secret_at_the_refresh_keeps_the_previous_document_and_shows_in_health,
    async {
        let w = World::new().await;
        w.vault
            .add_raw("v1", "application/json", &w.document(false));
        let (gate, task) = w.serve().await;
        let loaded = gate.partners().unwrap().active().sha256.clone();

        // A document that does not parse.
        w.vault
            .add_raw("v2", "application/json", "{\"partners\": [ {\"name\": ");
        let error = eventually(WAIT, || async { last_reload_error(&gate) }).await;
        let error = error.expect("the bad reload shows in health");
        assert!(error.contains("line"), "{error}");
        assert_eq!(gate.partners().unwrap().active().sha256, loaded);
        assert_eq!(partner_of(&gate, &w.fabrikam).as_deref(), Ok("Fabrikam"));

        // A secret that cannot be read any more.
        w.vault.set_mode(VaultMode::Status(403));
        let error = eventually(WAIT, || async {
            last_reload_error(&gate).filter(|e| e.contains("403"))
        })
        .await;
        let error = error.expect("the unreadable secret shows in health");
        assert!(error.contains(CERT_NAME), "{error}");
        assert_eq!(gate.partners().unwrap().active().sha256, loaded);
        assert_eq!(partner_of(&gate, &w.fabrikam).as_deref(), Ok("Fabrikam"));
        assert!(child_logs().count("partners document not reloaded") >= 2);
        task.abort();
    }
);

managed_identity_test!(
    a_secret_that_cannot_be_read_at_start_up_stops_start_up_naming_the_setting,
    async {
        let w = World::new().await;
        w.vault
            .add_raw("v1", "application/json", &w.document(false));
        w.vault.set_mode(VaultMode::Status(403));
        let Err(e) = w.start().await else {
            panic!("start-up succeeded without its partners document");
        };
        assert_eq!(e.setting(), "CLIENT_CERT_PARTNERS_SECRET");
        let message = e.to_string();
        assert!(
            message.contains("403") && message.contains(CERT_NAME),
            "{message}"
        );
    }
);

managed_identity_test!(
    a_secret_that_is_not_a_valid_document_stops_start_up_with_the_line_and_column,
    async {
        let w = World::new().await;
        w.vault.add_raw(
            "v1",
            "application/json",
            "{\"partners\": [ {\"name\": 7} ]}",
        );
        let Err(e) = w.start().await else {
            panic!("start-up succeeded with a bad partners document");
        };
        assert_eq!(e.setting(), "CLIENT_CERT_PARTNERS_SECRET");
        let message = e.to_string();
        assert!(message.contains("line 1"), "{message}");
    }
);

managed_identity_test!(
    a_shadow_document_in_a_key_vault_secret_is_loaded_and_follows_new_versions,
    async {
        let mut w = World::new().await;
        w.env.remove("CLIENT_CERT_PARTNERS_SECRET");
        w.env
            .insert("CLIENT_CERT_PARTNERS".into(), w.document(false));
        w.env.insert(
            "CLIENT_CERT_SHADOW_PARTNERS_SECRET".into(),
            CERT_NAME.into(),
        );
        w.vault
            .add_raw("v1", "application/json", &w.document(false));
        let (gate, task) = w.serve().await;
        let shadow = || gate.partners().unwrap().status(now()).shadow.unwrap();
        let first = shadow()
            .sha256
            .expect("the shadow document is loaded at start-up");
        assert_eq!(gate.partners().unwrap().active().sha256, first);
        assert_eq!(
            shadow().source,
            format!("Key Vault secret {CERT_NAME} in {VAULT_URL}")
        );

        w.vault.add_raw("v2", "application/json", &w.document(true));
        let next = eventually(WAIT, || async { shadow().sha256.filter(|s| *s != first) }).await;
        assert!(next.is_some(), "the new version never reached the shadow");
        // The enforced document is not touched, and Northwind is still refused.
        assert_eq!(gate.partners().unwrap().active().sha256, first);
        assert!(partner_of(&gate, &w.northwind).is_err());
        task.abort();
    }
);

//! Process start-up for the `serve` command, as the Functions host runs it.
//!
//! Owns: the order of start-up (logs, settings, functions and their folders, runtime,
//! state, socket) and the exit codes the host acts on: 0 after a clean shutdown (the host
//! does not restart us), 1 for a bad setting, function folders that disagree with the
//! registered functions, or a port that cannot be bound (the host restarts and reports
//! stderr).
//! It also joins the two sides where the inbound partners document lives in Key Vault: the
//! outbound Key Vault reader implements `inbound::partner_source::SecretText`.
//! Must not: hold request logic.

use crate::clock::system_clock;
use crate::host::config::Config;
use crate::host::function::AppState;
use crate::host::function::{Access, Function, Registry};
use crate::inbound::config::{PartnersConfig, PartnersSource};
use crate::inbound::partner_source::{self, SecretFuture, SecretText};
use crate::inbound::InboundGate;
use crate::outbound::key_vault::KeyVaultReader;
use crate::outbound::{Outbound, OutboundConfig};
use crate::settings::{ConfigError, EnvSource, ProcessEnv};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

/// Runs the handler with `functions` until SIGTERM or Ctrl-C.
pub fn serve(functions: Vec<Function>) -> ExitCode {
    let env = ProcessEnv;
    let log_format = env.get("LOG_FORMAT").map(|f| f.trim().to_ascii_lowercase());
    crate::telemetry::init(log_format.as_deref() == Some("json"));
    if let Some(other) = log_format.filter(|f| f != "json" && f != "text") {
        return fatal(&ConfigError::invalid(
            "LOG_FORMAT",
            format!("{other:?} is neither text nor json"),
        ));
    }
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let registry = match checked_registry(functions, &config) {
        Ok(r) => r,
        Err(message) => {
            tracing::error!(error = %message, "functions do not match their folders");
            eprintln!("fatal: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fatal: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let secrets = match partner_secrets(&config.outbound, config.inbound.partners.as_ref()) {
            Ok(s) => s,
            Err(e) => return fatal(&e),
        };
        let gate = match InboundGate::from_config_with_secrets(&config.inbound, secrets.as_deref())
            .await
        {
            Ok(g) => g,
            Err(e) => return fatal(&e),
        };
        let state = state_with(&config, registry, gate);
        // The host only ever connects to 127.0.0.1; nothing else should reach us directly.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                eprintln!("fatal: cannot listen on {addr} (FUNCTIONS_CUSTOMHANDLER_PORT): {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "listening");
        // Keeps the CRLs current; ends with the runtime.
        if let Some(revocation) = &config.inbound.revocation {
            crate::inbound::crl_store::spawn(state.gate.clone(), state.clock, revocation);
        }
        // Keeps the partners document current; ends with the runtime.
        if let Some(partners) = &config.inbound.partners {
            partner_source::spawn(state.gate.clone(), state.clock, partners, secrets.clone());
        }
        crate::host::server::run(listener, state, crate::host::server::shutdown_signal()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// `functions` checked among themselves and against the folders at the app root; the
/// error is one line naming the folder and the difference.
pub fn checked_registry(functions: Vec<Function>, config: &Config) -> Result<Registry, String> {
    let registry = Registry::new(functions).map_err(|e| e.to_string())?;
    let root = crate::host::folders::app_root(config.functions.app_root.as_deref())
        .map_err(|e| e.to_string())?;
    let problems = crate::host::folders::check(&root, &registry);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(lines.join("; "));
    }
    for f in registry.iter() {
        tracing::info!(
            function = f.name(),
            route = f.route_template(),
            methods = %f.allow_header(),
            access = match f.access() {
                Access::Gated => "client certificate",
                Access::Public => "PUBLIC (no certificate)",
            },
            "function registered"
        );
    }
    Ok(registry)
}

/// The shared state for `config` serving `functions`.
pub fn build_state_with(
    config: &Config,
    functions: Registry,
) -> Result<Arc<AppState>, ConfigError> {
    Ok(state_with(
        config,
        functions,
        InboundGate::from_config(&config.inbound)?,
    ))
}

fn state_with(config: &Config, functions: Registry, gate: InboundGate) -> Arc<AppState> {
    Arc::new(AppState {
        gate: Arc::new(gate),
        cert_headers: crate::host::function::CertHeaderNames::from_config(&config.inbound.header),
        outbound: Outbound::start(config.outbound.clone()),
        clock: system_clock,
        functions,
        max_body_bytes: config.functions.max_body_bytes,
    })
}

/// The reader of a partners document kept in a Key Vault secret: the outbound Key Vault
/// reader (same vault, credential, proxy and timeout as the outbound certificate), when
/// `partners` names a secret. A reader that cannot be built fails start-up naming the
/// partners setting.
pub fn partner_secrets(
    outbound: &OutboundConfig,
    partners: Option<&PartnersConfig>,
) -> Result<Option<Arc<dyn SecretText>>, ConfigError> {
    let Some(partners) = partners.filter(|p| partner_source::uses_secret(p)) else {
        return Ok(None);
    };
    let setting = match &partners.source {
        PartnersSource::Secret { .. } => partners.source.setting(false),
        _ => "CLIENT_CERT_SHADOW_PARTNERS_SECRET",
    };
    let Some(vault) = &outbound.secrets_vault else {
        return Err(ConfigError::invalid(
            setting,
            "a Key Vault secret needs KEY_VAULT_URL",
        ));
    };
    let reader = KeyVaultReader::new(vault, outbound.timeout, &outbound.overrides)
        .map_err(|e| ConfigError::invalid(setting, format!("cannot use Key Vault: {e}")))?;
    Ok(Some(Arc::new(reader)))
}

/// The Key Vault reader fetches the text of a partners document; errors name the secret,
/// never its value.
impl SecretText for KeyVaultReader {
    fn read<'a>(&'a self, name: &'a str) -> SecretFuture<'a> {
        Box::pin(async move {
            self.fetch_text(name)
                .await
                .map_err(|e| format!("cannot read Key Vault secret {name}: {e}"))
        })
    }
}

fn fatal(e: &ConfigError) -> ExitCode {
    tracing::error!(setting = e.setting(), error = %e, "invalid configuration");
    eprintln!("fatal: {e}");
    ExitCode::FAILURE
}

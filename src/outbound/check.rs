//! `handler outbound check`: loads the outbound certificate once with the current settings,
//! the way the running handler does, and says where it came from (credential, vault,
//! version, thumbprint, notAfter) or why not. Exit 0 when a certificate loaded, 1 otherwise
//! (including bad settings).
//!
//! Owns: the report's wording. Must not: keep anything, call the partner API, or print
//! secrets (the report holds settings, ids, paths and the same failure text as the 503).

use super::config::{FileConfig, OutboundConfig};
use super::identity::{self, IdentitySource};
use crate::settings::ProcessEnv;
use std::fmt::Write as _;
use std::process::ExitCode;

/// The check's outcome: the text to print and whether a certificate loaded.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub text: String,
    pub ok: bool,
}

/// Loads the identity once from `config`'s sources (Key Vault, then the file, as the
/// handler does) at `now`.
pub async fn check(config: &OutboundConfig, now: i64) -> CheckReport {
    let mut text = String::new();
    let line = |text: &mut String, key: &str, value: &str| {
        let _ = writeln!(text, "  {:<12} {value}", format!("{key}:"));
    };
    text.push_str("Outbound certificate settings\n");
    if let Some(kv) = &config.key_vault {
        line(&mut text, "credential", &kv.credential.describe());
        line(&mut text, "why", &kv.credential.reason);
        line(&mut text, "vault", &kv.vault_url);
        line(&mut text, "certificate", &kv.certificate_name);
        line(
            &mut text,
            "version",
            kv.version.as_deref().unwrap_or("latest"),
        );
    }
    match &config.file {
        Some(FileConfig::Path { path, .. }) => {
            line(&mut text, "file", &path.display().to_string());
        }
        Some(FileConfig::Thumbprint { dir, thumbprint }) => line(
            &mut text,
            "file",
            &dir.join(format!("{thumbprint}.p12")).display().to_string(),
        ),
        None => {}
    }
    if !config.has_identity_source() {
        let _ = writeln!(
            text,
            "\nNot loaded\n  error: {}",
            identity::LoadFailure { attempts: vec![] }
        );
        return CheckReport { text, ok: false };
    }
    let (sources, setup_failures) = IdentitySource::from_config(config);
    // Each source on its own, so a Key Vault failure shows even when the file would serve.
    let mut failures = setup_failures;
    for source in &sources {
        match source.load(now).await {
            Ok(id) => {
                let _ = writeln!(text, "\nLoaded from {}", source.describe());
                line(&mut text, "source", id.source.as_str());
                line(&mut text, "origin", &id.origin);
                if id.source == identity::SourceKind::KeyVault {
                    let version = id.origin.rsplit('/').next().unwrap_or_default();
                    line(&mut text, "version", version);
                }
                line(&mut text, "thumbprint", id.thumbprint());
                if let Some(cn) = &id.material.common_name {
                    line(&mut text, "subject CN", cn);
                }
                line(
                    &mut text,
                    "notBefore",
                    &crate::clock::rfc3339(id.material.not_before),
                );
                line(
                    &mut text,
                    "notAfter",
                    &crate::clock::rfc3339(id.not_after()),
                );
                if !failures.is_empty() {
                    let _ = writeln!(
                        text,
                        "  warning:     an earlier source failed, the handler falls back to this \
                         one: {}",
                        identity::LoadFailure { attempts: failures }
                    );
                }
                return CheckReport { text, ok: true };
            }
            Err(error) => failures.push(identity::Attempt {
                source: source.describe(),
                error,
            }),
        }
    }
    let _ = writeln!(
        text,
        "\nNot loaded\n  error: {}",
        identity::LoadFailure { attempts: failures }
    );
    CheckReport { text, ok: false }
}

/// The `outbound check` command: settings from the environment, one load, the report.
pub fn run() -> ExitCode {
    let config = match OutboundConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("outbound check: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("outbound check: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(check(&config, crate::clock::system_clock()));
    print!("{}", report.text);
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

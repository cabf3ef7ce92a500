//! `handler partners check FILE` and `handler partners from-settings`: what an operator runs
//! before changing the partners document, and to migrate from the flat settings.
//!
//! Owns: reading a document file for a check (with the same parser and, when
//! `CLIENT_CERT_CA_PATH` is set, the same issuer resolution the handler uses at start-up),
//! and writing the document equivalent to `ALLOWED_CLIENT_CERT_*`.
//! Exit codes: 0 valid (or an exact equivalent printed), 1 otherwise, with the errors on
//! standard error.
//! Must not: change anything; it reads only the file it is given and the environment.

use crate::inbound::client_cert::partners::{self, Document, PartnerSet, IMPLICIT_PARTNER};
use crate::inbound::client_cert::{Thumbprint, TrustAnchors};
use crate::inbound::config::InboundConfig;
use crate::settings::{EnvSource, ProcessEnv};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// The `partners check FILE` command.
pub fn run_check(path: &Path) -> ExitCode {
    match check(path, &ProcessEnv) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The `partners from-settings` command.
pub fn run_from_settings() -> ExitCode {
    match from_settings(&ProcessEnv) {
        Ok((doc, notes, exact)) => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            for n in &notes {
                eprintln!("note: {n}");
            }
            if exact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("partners from-settings: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a document file of at most [`partners::document::MAX_DOCUMENT_BYTES`].
pub fn read_document_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > partners::document::MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "{}: {} bytes, more than the {} allowed",
            path.display(),
            meta.len(),
            partners::document::MAX_DOCUMENT_BYTES
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks the document at `path`: the report on success, every error otherwise.
pub fn check(path: &Path, env: &dyn EnvSource) -> Result<String, Vec<String>> {
    let shown = path.display().to_string();
    let text = read_document_file(path).map_err(|e| vec![e])?;
    let doc = partners::parse(&text).map_err(|e| vec![format!("{shown}: {e}")])?;
    let mut report = String::new();
    match env.get("CLIENT_CERT_CA_PATH") {
        Some(ca) => {
            let trust = crate::inbound::load_trust(
                Path::new(&ca),
                true,
                crate::inbound::client_cert::WeakCa::Skip,
            )
            .map_err(|e| vec![format!("{shown}: cannot check issuers: {e}")])?;
            PartnerSet::compile(&doc, Some(&trust)).map_err(|e| vec![format!("{shown}: {e}")])?;
            let _ = writeln!(
                report,
                "{shown}: valid; issuers resolved against CLIENT_CERT_CA_PATH ({} CAs)",
                trust.len()
            );
        }
        None => {
            let _ = writeln!(
                report,
                "{shown}: valid syntax; issuers not checked (set CLIENT_CERT_CA_PATH to check \
                 them against the trusted CAs)"
            );
        }
    }
    let functions = crate::functions::all();
    let known: Vec<&str> = functions.iter().map(|f| f.name()).collect();
    for p in &doc.partners.0 {
        let functions = p.functions.names();
        let _ = writeln!(
            report,
            "  {:?}: {} match block(s), issuer {}, functions {}",
            p.name,
            p.blocks.len(),
            if p.issuer.is_empty() {
                "(none: pins only)".to_owned()
            } else {
                p.issuer
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            },
            functions.join(", ")
        );
        for f in functions.iter().filter(|f| *f != "*") {
            if !known.contains(&f.as_str()) {
                let _ = writeln!(
                    report,
                    "  warning: {:?} lists function {f:?}, which this app does not have ({})",
                    p.name,
                    known.join(", ")
                );
            }
        }
    }
    Ok(report)
}

/// The document equivalent to the flat settings in `env`, notes for the operator, and
/// whether it is exactly equivalent.
pub fn from_settings(env: &dyn EnvSource) -> Result<(Value, Vec<String>, bool), String> {
    let config = InboundConfig::from_env(env).map_err(|e| e.to_string())?;
    let trust: Option<TrustAnchors> = match &config.ca_path {
        Some(p) => Some(
            crate::inbound::load_trust(p, true, crate::inbound::client_cert::WeakCa::Skip)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut notes = Vec::new();
    let mut exact = true;
    let mut blocks = Vec::new();
    let mut pins: Vec<&Thumbprint> = config.thumbprints.iter().collect();
    pins.sort_by_key(|t| t.to_string());
    pins.dedup();
    for pin in pins {
        blocks.push(match pin {
            Thumbprint::Sha1(_) => json!({ "thumbprintSha1": pin.to_string() }),
            Thumbprint::Sha256(_) => json!({ "thumbprintSha256": pin.to_string() }),
        });
    }
    let issuers: Vec<String> = trust
        .as_ref()
        .map(|t| {
            let mut v: Vec<String> = t
                .certificates()
                .filter_map(|c| c.to_der().ok())
                .map(|d| Thumbprint::Sha256(crate::inbound::client_cert::sha256(&d)).to_string())
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if !config.common_names.is_empty() {
        if config.allow_unverified_common_names {
            exact = false;
            notes.push(
                "ALLOW_UNVERIFIED_COMMON_NAMES=true accepts a common name without a trusted \
                 chain; a partners document cannot express that (every name needs an issuer), \
                 so the common names below require a chain to a configured CA"
                    .to_owned(),
            );
        }
        if issuers.is_empty() {
            notes.push(format!(
                "CLIENT_CERT_CA_PATH is unset, so the common names ({}) are refused today; \
                 they are left out",
                config.common_names.join(", ")
            ));
        } else {
            for cn in &config.common_names {
                blocks.push(json!({ "commonName": cn, "issuer": issuers }));
            }
            notes.push(format!(
                "each common name may come from any of the {} CAs in CLIENT_CERT_CA_PATH, as \
                 today; narrow each one's issuer to its partner's CA",
                issuers.len()
            ));
        }
    }
    let partners = if blocks.is_empty() {
        notes.push("no allowlisted common names or thumbprints: nobody is allowed".to_owned());
        Vec::new()
    } else {
        vec![json!({
            "name": IMPLICIT_PARTNER,
            "match": blocks,
            "functions": ["*"],
        })]
    };
    let doc = json!({ "$schema": "partners.schema.json", "partners": partners });
    // What we print must load.
    let parsed: Document = partners::parse(&doc.to_string()).map_err(|e| e.to_string())?;
    PartnerSet::compile(&parsed, trust.as_ref()).map_err(|e| e.to_string())?;
    Ok((doc, notes, exact))
}

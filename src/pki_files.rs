//! Reading certificates from disk: a PEM bundle, a DER file, or a directory of them.
//!
//! Owns: file formats and directory walking for `CLIENT_CERT_CA_PATH`,
//! `REMOTE_API_CA_PATH` and similar settings (App Service puts uploaded public
//! certificates in `/var/ssl/certs` as `<thumbprint>.der`).
//! Must not: decide what the certificates are trusted for.

use openssl::x509::X509;
use std::path::{Path, PathBuf};

/// A file or directory that did not yield certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM or DER certificate ({reason})")]
    NotACertificate { path: PathBuf, reason: String },
    #[error("{path}: no certificates found")]
    Empty { path: PathBuf },
}

/// Reads every certificate under `path`. A directory is read one level deep, in name
/// order, skipping hidden files; every file in it must hold certificates.
pub fn read_certificates(path: &Path) -> Result<Vec<X509>, PkiFileError> {
    let files = files_at(path).map_err(|source| PkiFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for file in files {
        certs.extend(read_file(&file)?);
    }
    if certs.is_empty() {
        return Err(PkiFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// `path` itself when it is a file; when it is a directory, the regular files directly in
/// it, hidden ones skipped, in name order.
pub fn files_at(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Vec<X509>, PkiFileError> {
    let bytes = std::fs::read(path).map_err(|source| PkiFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_certificates(&bytes).map_err(|reason| PkiFileError::NotACertificate {
        path: path.to_owned(),
        reason,
    })
}

/// PEM (one or more `CERTIFICATE` blocks) or a single DER certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<X509>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs = X509::stack_from_pem(bytes).map_err(|e| e.to_string())?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block".to_owned());
        }
        Ok(certs)
    } else {
        X509::from_der(bytes)
            .map(|c| vec![c])
            .map_err(|e| e.to_string())
    }
}

//! `handler inspect`: what an operator runs when a partner says "we get 403".
//!
//! Owns: reading one certificate in whatever form the operator has it (PEM, DER, the
//! header's base64, or a copied `X-ARR-ClientCert: ...` line), printing its identity, and
//! asking the configured inbound gate — the same code path as a request — for its
//! decision at the current time, with the reason, the stable code and what to do about it.
//! Exit codes: 0 accepted, 1 rejected, 2 unreadable input or bad settings.
//! Must not: change the policy or cache anything across runs.

use crate::inbound::client_cert::{self, header, CertError, CertificateInfo, Policy};
use crate::inbound::config::InboundConfig;
use crate::inbound::InboundGate;
use crate::settings::{ConfigError, EnvSource, ProcessEnv};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

/// The most input we read: a certificate, even a chain in PEM, is far smaller.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Exit code for an accepted certificate.
pub const EXIT_ACCEPTED: u8 = 0;
/// Exit code for a rejected certificate.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code for unreadable input or bad settings.
pub const EXIT_UNUSABLE: u8 = 2;

/// Why the input did not yield a certificate.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge { what: String },
    #[error("{what} is empty")]
    Empty { what: String },
    #[error("{what} is not a PEM, DER or base64 certificate: {reason}")]
    NotACertificate { what: String, reason: String },
}

/// A certificate read from the input.
#[derive(Debug)]
pub struct Input {
    pub der: Vec<u8>,
    /// How it was written: `PEM`, `DER` or `base64`.
    pub format: &'static str,
    /// Further certificates in a PEM bundle, which the header would never carry.
    pub ignored: usize,
}

/// Reads `path` (`None` or `-` is standard input).
pub fn read_input(path: Option<&Path>) -> Result<Input, InputError> {
    let (what, bytes) = match path {
        None => read_stdin()?,
        Some(p) if p == Path::new("-") => read_stdin()?,
        Some(p) => {
            let what = p.display().to_string();
            let io = |source| InputError::Io {
                what: what.clone(),
                source,
            };
            let file = std::fs::File::open(p).map_err(io)?;
            let mut bytes = Vec::new();
            file.take(MAX_INPUT_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            (what, bytes)
        }
    };
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { what });
    }
    parse_input(&bytes).map_err(|e| match e {
        ParseError::Empty => InputError::Empty { what },
        ParseError::Bad(reason) => InputError::NotACertificate { what, reason },
    })
}

fn read_stdin() -> Result<(String, Vec<u8>), InputError> {
    let what = "standard input".to_owned();
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            what: what.clone(),
            source,
        })?;
    Ok((what, bytes))
}

enum ParseError {
    Empty,
    Bad(String),
}

/// PEM (the first CERTIFICATE block), DER, or base64 as in the header (optionally still
/// prefixed with `X-ARR-ClientCert:`).
fn parse_input(bytes: &[u8]) -> Result<Input, ParseError> {
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    if text.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs = openssl::x509::X509::stack_from_pem(text)
            .map_err(|e| ParseError::Bad(format!("PEM: {e}")))?;
        let Some(first) = certs.first() else {
            return Err(ParseError::Bad("PEM holds no CERTIFICATE block".to_owned()));
        };
        let der = first
            .to_der()
            .map_err(|e| ParseError::Bad(format!("PEM: {e}")))?;
        client_cert::describe(&der).map_err(|e| ParseError::Bad(e.to_string()))?;
        return Ok(Input {
            der,
            format: "PEM",
            ignored: certs.len() - 1,
        });
    }
    // A DER certificate starts with a SEQUENCE tag; base64 text never does.
    if bytes.first() == Some(&0x30) && client_cert::describe(bytes).is_ok() {
        return Ok(Input {
            der: bytes.to_vec(),
            format: "DER",
            ignored: 0,
        });
    }
    let value = strip_header_name(text);
    let der = header::decode(&[value]).map_err(|e| ParseError::Bad(e.to_string()))?;
    client_cert::describe(&der).map_err(|e| ParseError::Bad(e.to_string()))?;
    Ok(Input {
        der,
        format: "base64",
        ignored: 0,
    })
}

/// `X-ARR-ClientCert: MIIB...` as copied from a request log → `MIIB...`.
fn strip_header_name(text: &[u8]) -> &[u8] {
    let name = header::HEADER_NAME.as_bytes();
    match text.get(..name.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(name) => {
            let rest = &text[name.len()..];
            rest.strip_prefix(b":").unwrap_or(rest).trim_ascii()
        }
        _ => text,
    }
}

/// The `inspect` command.
pub fn run(path: Option<&Path>) -> ExitCode {
    run_compare(path, None)
}

/// The `inspect` command; with `compare`, also what that candidate partners document
/// would decide for each function.
pub fn run_compare(path: Option<&Path>, compare: Option<&Path>) -> ExitCode {
    let input = match read_input(path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("inspect: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let info = match client_cert::describe(&input.der) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("inspect: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    print!("{}", describe_certificate(&input, &info));
    let gate = match build_gate(&ProcessEnv) {
        Ok(g) => g,
        Err(e) => {
            println!("\nPolicy: cannot be built from the settings");
            eprintln!("inspect: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    print!("\n{}", describe_policy(gate.policy()));
    if let Some(p) = gate.partners() {
        let active = p.active();
        println!(
            "  partners document:                {} ({} partners, SHA-256 {})",
            active.source,
            active.set.len(),
            active.sha256
        );
    }
    if crate::settings::parse_bool(&ProcessEnv, "CLIENT_CERT_CRL_FETCH", false).unwrap_or(false) {
        println!(
            "  CLIENT_CERT_CRL_FETCH:            true (inspect does not download CRLs; only \
             CLIENT_CERT_CRL_PATH files count here)"
        );
    }
    let now = crate::clock::system_clock();
    let value = info_header_value(&input.der);
    let decision = gate.check(&[value], now);
    print!("\n{}", describe_decision(&decision, &info, now));
    if let Some(file) = compare {
        match compare_with(&gate, file, &input.der, &decision, now) {
            Ok(report) => print!("\n{report}"),
            Err(e) => {
                eprintln!("inspect: {e}");
                return ExitCode::from(EXIT_UNUSABLE);
            }
        }
    }
    match decision {
        Ok(_) => ExitCode::from(EXIT_ACCEPTED),
        Err(_) => ExitCode::from(EXIT_REJECTED),
    }
}

/// What the candidate document at `file` decides for the certificate, function by
/// function, beside the current decision.
fn compare_with(
    gate: &InboundGate,
    file: &Path,
    der: &[u8],
    current: &crate::inbound::cache::Decision,
    now: i64,
) -> Result<String, String> {
    use crate::inbound::config::PartnersSource;
    use crate::inbound::partners_state::Outcome;
    let source = PartnersSource::Path(file.to_owned());
    let text = crate::tools::partners::read_document_file(file)?;
    let candidate =
        crate::inbound::partner_source::compile(&source, text.as_bytes(), gate.policy(), now)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    let crls = gate.crls();
    let revocation = crls.as_deref().map(|c| client_cert::Revocation {
        crls: c,
        fail_open: crate::settings::parse_bool(
            &ProcessEnv,
            "CLIENT_CERT_REVOCATION_FAIL_OPEN",
            false,
        )
        .unwrap_or(false),
    });
    let decided = client_cert::validate_partners(
        der,
        gate.policy(),
        &candidate.set,
        revocation.as_ref(),
        now,
    )
    .map(|(a, _)| std::sync::Arc::new(a));
    let (before, after) = (Outcome::of(current), Outcome::of(&decided));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Candidate document {} ({} partners, SHA-256 {})",
        file.display(),
        candidate.set.len(),
        candidate.sha256
    );
    if let Err(e) = &decided {
        let _ = writeln!(s, "  candidate reason: {e}");
    }
    for f in crate::functions::all() {
        if f.access() == crate::host::function::Access::Public {
            continue;
        }
        let (b, a) = (before.for_function(f.name()), after.for_function(f.name()));
        let mark = if a == b { "same" } else { "DIFFERS" };
        let _ = writeln!(
            s,
            "  {:<14} current: {b:<36} candidate: {a:<36} {mark}",
            f.name()
        );
    }
    Ok(s)
}

fn build_gate(env: &dyn EnvSource) -> Result<InboundGate, ConfigError> {
    InboundGate::from_config(&InboundConfig::from_env(env)?)
}

/// The certificate as App Service would forward it.
fn info_header_value(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn time(unix: i64) -> String {
    crate::clock::rfc3339(unix)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// Every subject alternative name, typed (`DNS:`, `IP:`, `email:`, `URI:`).
fn subject_alt_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::RFC822Name(e) => format!("email:{e}"),
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => format!("IP:{}", std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
                16 => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(ip);
                    format!("IP:{}", std::net::Ipv6Addr::from(b))
                }
                _ => format!("IP:<{} bytes>", ip.len()),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

/// The identity block of the report.
pub fn describe_certificate(input: &Input, info: &CertificateInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Certificate ({})", input.format);
    if input.ignored > 0 {
        let _ = writeln!(
            s,
            "  note: {} more certificate(s) in the input were ignored; App Service forwards \
             only the leaf",
            input.ignored
        );
    }
    let cn = match info.common_names.as_slice() {
        [] => "(none: cannot match by common name)".to_owned(),
        [one] => format!("{one:?}"),
        many => format!("{many:?} (several: never matches by common name)"),
    };
    let ekus = match &info.extended_key_usages {
        None => "(no extension: every use allowed)".to_owned(),
        Some(e) => list_or_none(e),
    };
    let rows = [
        ("Subject", info.subject.clone()),
        ("Common name", cn),
        ("Issuer", info.issuer.clone()),
        ("SANs", list_or_none(&subject_alt_names(&input.der))),
        ("Serial", info.serial_number.clone()),
        ("Not before", time(info.not_before)),
        ("Not after", time(info.not_after)),
        ("EKU", ekus),
        ("CA", if info.is_ca { "yes" } else { "no" }.to_owned()),
        ("SHA-1", info.thumbprint_sha1.clone()),
        ("SHA-256", info.thumbprint_sha256.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "  {:<12} {v}", format!("{k}:"));
    }
    s
}

/// The policy block: what the settings in this environment mean.
pub fn describe_policy(policy: &Policy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Inbound policy (from this environment's settings)");
    let _ = writeln!(
        s,
        "  ALLOWED_CLIENT_CERT_COMMON_NAMES: {}",
        list_or_none(&policy.common_names)
    );
    let _ = writeln!(
        s,
        "  ALLOWED_CLIENT_CERT_THUMBPRINTS:  {} pinned",
        policy.thumbprints.len()
    );
    match &policy.trust {
        Some(t) => {
            let _ = writeln!(
                s,
                "  CLIENT_CERT_CA_PATH:              {} trusted CA(s): {}",
                t.len(),
                t.subjects().join("; ")
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  CLIENT_CERT_CA_PATH:              (unset: common-name matches are rejected \
                 unless ALLOW_UNVERIFIED_COMMON_NAMES=true)"
            );
        }
    }
    if policy.allow_unverified_common_names {
        let _ = writeln!(
            s,
            "  ALLOW_UNVERIFIED_COMMON_NAMES:    true (INSECURE: a matching CN is accepted \
             without a trusted chain)"
        );
    }
    s
}

/// The decision block: verdict, code, reason and the fix.
pub fn describe_decision(
    decision: &crate::inbound::cache::Decision,
    info: &CertificateInfo,
    now: i64,
) -> String {
    let mut s = String::new();
    match decision {
        Ok(accepted) => {
            let _ = writeln!(s, "Decision at {}: ACCEPTED (200)", time(now));
            let how = match accepted.matched_by {
                client_cert::MatchedBy::Thumbprint => "a pinned thumbprint",
                client_cert::MatchedBy::CommonName => "an allowlisted common name",
                client_cert::MatchedBy::Spki => "a pinned public key (spkiSha256)",
                client_cert::MatchedBy::SerialNumber => "a serial number from its issuer",
                client_cert::MatchedBy::Uri => "a URI subject alternative name",
                client_cert::MatchedBy::Email => "an email subject alternative name",
                client_cert::MatchedBy::DnsName => "a DNS subject alternative name",
            };
            let _ = writeln!(
                s,
                "  partner:    {} (may call: {})",
                accepted.partner.name,
                accepted.partner.functions.names().join(", ")
            );
            let _ = writeln!(s, "  matched by: {how}");
            let _ = writeln!(
                s,
                "  this decision holds until {} (the earliest notAfter on the chain)",
                time(accepted.valid_until)
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "Decision at {}: REJECTED (403, code {})",
                time(now),
                e.code()
            );
            let _ = writeln!(s, "  reason: {e}");
            let _ = writeln!(s, "  what to do: {}", advice(e, info));
        }
    }
    s
}

/// What an operator does about each rejection.
pub fn advice(e: &CertError, info: &CertificateInfo) -> String {
    match e {
        CertError::Missing => "the request carried no certificate: the partner must present \
            one in the TLS handshake, and the app must have clientCertEnabled=true with \
            clientCertMode=Required"
            .to_owned(),
        CertError::Malformed(client_cert::Malformed::Profile { .. }) => "the certificate \
            itself breaks the X.509 profile (see the reason); the partner's CA must issue a \
            well-formed certificate"
            .to_owned(),
        CertError::Malformed(_) => "the header does not hold one base64 DER certificate; \
            something between the partner and the app rewrote it"
            .to_owned(),
        CertError::WeakKey { .. } => "the partner must get a certificate with an RSA key of \
            at least 2048 bits or an ECDSA key on P-256/P-384/P-521, signed with SHA-256 or \
            better; CLIENT_CERT_ALLOW_WEAK_KEYS=true accepts it meanwhile (insecure)"
            .to_owned(),
        CertError::NotYetValid { not_before, .. } => format!(
            "the certificate starts being valid at {}; check the partner's clock or wait",
            time(*not_before)
        ),
        CertError::Expired { not_after, .. } => format!(
            "the certificate expired at {}; the partner must renew it (pinned certificates \
             expire too; pin the new thumbprint)",
            time(*not_after)
        ),
        CertError::NotForClientAuth { .. } => "the certificate's extended key usage does not \
            include clientAuth; the partner must use a certificate issued for client \
            authentication"
            .to_owned(),
        CertError::CaCertificate => "this is a CA certificate; the partner must present its \
            leaf (client) certificate"
            .to_owned(),
        CertError::UntrustedChain { .. } if info.issuer == info.subject => format!(
            "the certificate is self-signed, so anyone could have made it with this common \
             name; if the partner confirms (out of band) that SHA-256 {} is theirs, pin it in \
             ALLOWED_CLIENT_CERT_THUMBPRINTS, otherwise ask for a CA-issued certificate",
            info.thumbprint_sha256
        ),
        CertError::UntrustedChain { .. } => format!(
            "the common name is allowed but the certificate does not chain to a CA in \
             CLIENT_CERT_CA_PATH; add the partner's issuing CA ({}) there (or its root), \
             or pin this certificate in ALLOWED_CLIENT_CERT_THUMBPRINTS",
            info.issuer
        ),
        CertError::NotAllowlisted => format!(
            "add the common name to ALLOWED_CLIENT_CERT_COMMON_NAMES (with its CA in \
             CLIENT_CERT_CA_PATH), or pin SHA-256 {} in ALLOWED_CLIENT_CERT_THUMBPRINTS",
            info.thumbprint_sha256
        ),
        CertError::Revoked { .. } => "the issuer revoked this certificate; the partner \
            needs a new one"
            .to_owned(),
        CertError::RevocationUnknown { .. } => "no current CRL for the issuer: update \
            CLIENT_CERT_CRL_PATH (or check CRL fetching); CLIENT_CERT_REVOCATION_FAIL_OPEN=true \
            accepts in this case"
            .to_owned(),
        CertError::WrongIssuer { partner, .. } => format!(
            "the certificate carries partner {partner:?}'s identity but chains to another CA              ({}); the partner's certificates must come from the CA its `issuer` names              (add the CA to the partner's issuer list if the partner really moved)",
            info.issuer
        ),
        CertError::AmbiguousPartner { partners } => format!(
            "the certificate matches {}; make the partners' match blocks disjoint (for              example add an issuer or a more specific field)",
            partners.join(" and ")
        ),
        #[allow(unreachable_patterns)]
        _ => "see the reason above".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_header_line_is_reduced_to_its_value_in_any_case() {
        assert_eq!(strip_header_name(b"X-ARR-ClientCert: QUJD"), b"QUJD");
        assert_eq!(strip_header_name(b"x-arr-clientcert:QUJD"), b"QUJD");
        assert_eq!(strip_header_name(b"QUJD"), b"QUJD");
    }

    #[test]
    fn empty_and_whitespace_input_is_reported_as_empty() {
        assert!(matches!(parse_input(b" \n\t"), Err(ParseError::Empty)));
    }

    #[test]
    fn a_pem_chain_reads_the_first_certificate_and_counts_the_rest() {
        let now = 1_800_000_000;
        let ca = crate::tools::pki::CertSpec::ca("ca", now, 10)
            .self_signed()
            .unwrap();
        let leaf = crate::tools::pki::CertSpec::leaf("leaf", now, 10)
            .issued_by(&ca)
            .unwrap();
        let mut pem = leaf.cert_pem().unwrap();
        pem.extend(ca.cert_pem().unwrap());
        let Ok(input) = parse_input(&pem) else {
            panic!("chain not read");
        };
        assert_eq!(input.der, leaf.der());
        assert_eq!((input.format, input.ignored), ("PEM", 1));
    }
}

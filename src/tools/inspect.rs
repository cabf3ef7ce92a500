//! `handler inspect`: what an operator runs when a partner says "we get 403".
//!
//! Owns: reading one certificate in whatever form the operator has it (PEM, DER, the
//! header's base64, a copied `X-ARR-ClientCert: ...` line, or a whole header line of the
//! configured format: an XFCC element, `Client-Cert:` (and `Client-Cert-Chain:`) lines, a
//! URL-encoded PEM), with the forwarded chain where the format carries one, printing its
//! identity, and
//! asking the configured inbound gate — the same code path as a request — for its
//! decision at the current time, with the reason, the stable code and what to do about it.
//! Exit codes: 0 accepted, 1 rejected, 2 unreadable input or bad settings.
//! Must not: change the policy or cache anything across runs.

use crate::inbound::client_cert::forwarded::{self, HeaderFormat};
use crate::inbound::client_cert::{self, header, CertError, CertificateInfo, Policy};
use crate::inbound::config::{HeaderConfig, InboundConfig};
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
    /// The forwarded chain (untrusted intermediates), for formats that carry one.
    pub chain: Vec<Vec<u8>>,
}

/// Reads `path` (`None` or `-` is standard input), a header value being in `format`.
pub fn read_input(path: Option<&Path>, format: HeaderFormat) -> Result<Input, InputError> {
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
    parse_input(&bytes, format).map_err(|e| match e {
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

/// PEM (the first CERTIFICATE block; with `xfcc` or `rfc9440` the others are the forwarded
/// chain), DER, or a header value in `format` (optionally still prefixed with its header
/// name, as copied from a log).
fn parse_input(bytes: &[u8], format: HeaderFormat) -> Result<Input, ParseError> {
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
        let rest = certs[1..]
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ParseError::Bad(format!("PEM: {e}")))?;
        let (ignored, chain) = if carries_chain(format) {
            (0, rest)
        } else {
            (rest.len(), Vec::new())
        };
        return Ok(Input {
            der,
            format: "PEM",
            ignored,
            chain,
        });
    }
    // A DER certificate starts with a SEQUENCE tag; base64 text never does.
    if bytes.first() == Some(&0x30) && client_cert::describe(bytes).is_ok() {
        return Ok(Input {
            der: bytes.to_vec(),
            format: "DER",
            ignored: 0,
            chain: Vec::new(),
        });
    }
    if format != HeaderFormat::Arr {
        return parse_header_lines(text, format);
    }
    let value = strip_header_name(text);
    let der = header::decode(&[value]).map_err(|e| ParseError::Bad(e.to_string()))?;
    client_cert::describe(&der).map_err(|e| ParseError::Bad(e.to_string()))?;
    Ok(Input {
        der,
        format: "base64",
        ignored: 0,
        chain: Vec::new(),
    })
}

fn carries_chain(format: HeaderFormat) -> bool {
    matches!(format, HeaderFormat::Xfcc | HeaderFormat::Rfc9440)
}

/// Header lines of `format` as pasted from a log: one line for `xfcc` and
/// `pem-urlencoded`; for `rfc9440` the `Client-Cert` line and any `Client-Cert-Chain`
/// lines. Decoded by the same code as a request.
fn parse_header_lines(text: &[u8], format: HeaderFormat) -> Result<Input, ParseError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| ParseError::Bad(format!("a {format} header line is text")))?;
    let (mut cert, mut chain) = (Vec::new(), Vec::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match split_header_name(line) {
            (Some(name), value) if name.eq_ignore_ascii_case("Client-Cert-Chain") => {
                chain.push(value);
            }
            (_, value) => cert.push(value),
        }
    }
    let got =
        forwarded::decode(format, &cert, &chain).map_err(|e| ParseError::Bad(e.to_string()))?;
    client_cert::describe(&got.leaf).map_err(|e| ParseError::Bad(e.to_string()))?;
    Ok(Input {
        der: got.leaf,
        format: format.name(),
        ignored: 0,
        chain: got.chain,
    })
}

/// `Name: value` → (`Some(Name)`, `value`) when the text before the first `:` is an HTTP
/// field name; otherwise the whole line is the value (`:base64:` and XFCC's `By=spiffe://`
/// are not names).
fn split_header_name(line: &str) -> (Option<&str>, &str) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    match line.split_once(':') {
        Some((name, rest)) if !name.is_empty() && name.chars().all(token) => {
            (Some(name), rest.trim())
        }
        _ => (None, line),
    }
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
    run_compare(path, None, None, None)
}

/// The `inspect` command; with `compare`, also what that candidate partners document
/// would decide for each function. `format` overrides `CLIENT_CERT_HEADER_FORMAT`, and the
/// certificates in `intermediates` are added to `CLIENT_CERT_INTERMEDIATES_PATH`.
pub fn run_compare(
    path: Option<&Path>,
    compare: Option<&Path>,
    format: Option<HeaderFormat>,
    intermediates: Option<&Path>,
) -> ExitCode {
    let config = match inspect_config(&ProcessEnv, format) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inspect: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    let format = config.header.format;
    let input = match read_input(path, format) {
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
    let gate = match build_gate(&config, intermediates) {
        Ok(g) => g,
        Err(e) => {
            println!("\nPolicy: cannot be built from the settings");
            eprintln!("inspect: {e}");
            return ExitCode::from(EXIT_UNUSABLE);
        }
    };
    print!("\n{}", describe_policy(gate.policy()));
    println!(
        "  CLIENT_CERT_HEADER_FORMAT:        {} (header {})",
        format, config.header.name
    );
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
    if !input.chain.is_empty() {
        println!(
            "\nForwarded chain: {} untrusted certificate(s): {}",
            input.chain.len(),
            input
                .chain
                .iter()
                .map(|c| client_cert::describe(c).map_or_else(|e| e.to_string(), |i| i.subject))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    // The same decoding and decision as a request: the certificate in the configured
    // format, with the chain where the format carries one.
    let (value, chain) = forwarded::encode(format, &input.der, &input.chain);
    let chain: Vec<String> = chain.into_iter().collect();
    let decision = gate.check_forwarded(&[value], &chain, now);
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

/// The settings, with `format` (when given) replacing the configured header format.
fn inspect_config(
    env: &dyn EnvSource,
    format: Option<HeaderFormat>,
) -> Result<InboundConfig, ConfigError> {
    let mut config = InboundConfig::from_env(env)?;
    if let Some(format) = format.filter(|f| *f != config.header.format) {
        config.header = HeaderConfig {
            format,
            name: format
                .default_header()
                .unwrap_or(crate::tools::front_end::DEFAULT_PEM_HEADER)
                .to_owned(),
            chain_name: format.default_chain_header().map(str::to_owned),
        };
    }
    Ok(config)
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

fn build_gate(
    config: &InboundConfig,
    intermediates: Option<&Path>,
) -> Result<InboundGate, ConfigError> {
    InboundGate::from_config_with_intermediates(config, intermediates)
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
            if !t.intermediates().is_empty() {
                let _ = writeln!(
                    s,
                    "  CLIENT_CERT_INTERMEDIATES_PATH:   {} untrusted intermediate(s): {}",
                    t.intermediates().len(),
                    t.intermediates().subjects().join("; ")
                );
            }
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
        CertError::Malformed(client_cert::Malformed::Header(_)) => "the header does not \
            follow CLIENT_CERT_HEADER_FORMAT (see the reason); check that the setting names \
            the format your front end sends, and that nothing between it and the app rewrites \
            the header"
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
        assert!(matches!(
            parse_input(b" \n\t", HeaderFormat::Arr),
            Err(ParseError::Empty)
        ));
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
        let Ok(input) = parse_input(&pem, HeaderFormat::Arr) else {
            panic!("chain not read");
        };
        assert_eq!(input.der, leaf.der());
        assert_eq!((input.format, input.ignored), ("PEM", 1));
        // A format that forwards chains keeps the rest as the chain.
        let Ok(input) = parse_input(&pem, HeaderFormat::Xfcc) else {
            panic!("chain not read");
        };
        assert_eq!((input.ignored, input.chain), (0, vec![ca.der()]));
    }

    #[test]
    fn pasted_header_lines_of_every_format_are_read_with_their_chain() {
        let now = 1_800_000_000;
        let ca = crate::tools::pki::CertSpec::ca("ca", now, 10)
            .self_signed()
            .unwrap();
        let mid = crate::tools::pki::CertSpec::ca("mid", now, 10)
            .issued_by(&ca)
            .unwrap();
        let leaf = crate::tools::pki::CertSpec::leaf("leaf", now, 10)
            .issued_by(&mid)
            .unwrap();
        let chain = vec![mid.der()];
        let (xfcc, _) = forwarded::encode(HeaderFormat::Xfcc, &leaf.der(), &chain);
        let (cert, list) = forwarded::encode(HeaderFormat::Rfc9440, &leaf.der(), &chain);
        let (pem, _) = forwarded::encode(HeaderFormat::PemUrlencoded, &leaf.der(), &[]);
        let cases = [
            (
                HeaderFormat::Xfcc,
                format!("x-forwarded-client-cert: {xfcc}"),
                1,
            ),
            (
                HeaderFormat::Rfc9440,
                format!(
                    "Client-Cert: {cert}\nClient-Cert-Chain: {}\n",
                    list.unwrap()
                ),
                1,
            ),
            (HeaderFormat::Rfc9440, cert.clone(), 0),
            (
                HeaderFormat::PemUrlencoded,
                format!("X-Client-Certificate: {pem}"),
                0,
            ),
        ];
        for (format, text, chained) in cases {
            let Ok(input) = parse_input(text.as_bytes(), format) else {
                panic!("{format}: {text} not read");
            };
            assert_eq!(input.der, leaf.der(), "{format}");
            assert_eq!(input.chain.len(), chained, "{format}");
        }
        assert!(matches!(
            parse_input(b"Cert=\"unterminated", HeaderFormat::Xfcc),
            Err(ParseError::Bad(_))
        ));
    }
}

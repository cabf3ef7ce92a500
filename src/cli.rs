//! Command-line interface: `handler` with no subcommand serves, as the host starts it.
//!
//! Owns: argument syntax and dispatch to the module that does the work.
//! Must not: do the work itself.

use crate::inbound::client_cert::forwarded::HeaderFormat;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Azure Functions custom handler for client-certificate (mTLS) APIs.
#[derive(Debug, Parser)]
#[command(name = "handler", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Functions host (the default).
    Serve,
    /// Write a local demo PKI (CA, partner client, server, outbound identity).
    DevCerts {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Regenerate every file even if a complete set exists.
        #[arg(long)]
        force: bool,
    },
    /// Local stand-in for an Azure TLS front end: asks for a client certificate and
    /// forwards it to the backend in the header format of App Service (X-ARR-ClientCert),
    /// Container Apps (XFCC), RFC 9440 or Application Gateway (URL-encoded PEM).
    FrontEnd {
        /// Address to listen on, e.g. 127.0.0.1:8443.
        #[arg(long)]
        listen: SocketAddr,
        /// The handler (or `func start`), e.g. http://127.0.0.1:7071.
        #[arg(long)]
        backend: String,
        /// PEM server certificate (and chain).
        #[arg(long)]
        tls_cert: PathBuf,
        /// PEM private key of the server certificate.
        #[arg(long)]
        tls_key: PathBuf,
        /// `required` fails the handshake without a certificate; `optional` forwards without.
        #[arg(long, value_enum, default_value_t = crate::tools::front_end::Mode::Required)]
        mode: crate::tools::front_end::Mode,
        /// How the certificate is forwarded: arr (App Service), xfcc (Container Apps),
        /// rfc9440, pem-urlencoded (Application Gateway / nginx).
        #[arg(long, default_value = "arr", value_parser = parse_header_format)]
        header_format: HeaderFormat,
        /// The certificate header (default per format; pem-urlencoded: X-Client-Certificate).
        #[arg(long)]
        header: Option<String>,
        /// Also forward the intermediates the client sent (xfcc Chain, rfc9440
        /// Client-Cert-Chain).
        #[arg(long)]
        forward_chain: bool,
    },
    /// Explain what the configured inbound policy decides for one certificate (PEM, DER or
    /// the header's base64). Exit 0 accepted, 1 rejected, 2 unreadable input or settings.
    Inspect {
        /// Certificate file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// How the input is written when it is a header value: arr (base64, PEM, DER),
        /// xfcc, rfc9440 (a Client-Cert line, optionally followed by a Client-Cert-Chain
        /// line), pem-urlencoded. Default: CLIENT_CERT_HEADER_FORMAT, else arr.
        #[arg(long, value_parser = parse_header_format)]
        format: Option<HeaderFormat>,
        /// Untrusted intermediate CAs (PEM/DER file) that may complete the path, added to
        /// CLIENT_CERT_INTERMEDIATES_PATH.
        #[arg(long)]
        intermediates: Option<PathBuf>,
        /// A candidate partners document: also print what it would decide for each
        /// function, beside the current decision.
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
    },
    /// The outbound (client) certificate.
    Outbound {
        #[command(subcommand)]
        command: OutboundCommand,
    },
    /// Check a partners document, or print the one equivalent to the app settings.
    Partners {
        #[command(subcommand)]
        command: PartnersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboundCommand {
    /// Load the outbound certificate once with the current settings and print where it came
    /// from (credential, vault, version, thumbprint, notAfter) or why not. Exit 0 loaded, 1 not.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
    /// Validate a partners document (issuers too, when CLIENT_CERT_CA_PATH is set).
    /// Exit 0 valid, 1 with the errors (line, column, JSON path).
    Check {
        /// The document (JSON).
        file: PathBuf,
    },
    /// Print the partners document equivalent to ALLOWED_CLIENT_CERT_COMMON_NAMES,
    /// ALLOWED_CLIENT_CERT_THUMBPRINTS and CLIENT_CERT_CA_PATH (exit 1 when not exact).
    FromSettings,
}

/// Parses the arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve) => crate::host::start::serve(crate::functions::all()),
        Some(Command::DevCerts { out, force }) => crate::tools::dev_certs::run(&out, force),
        Some(Command::FrontEnd {
            listen,
            backend,
            tls_cert,
            tls_key,
            mode,
            header_format,
            header,
            forward_chain,
        }) => crate::tools::front_end::run(&crate::tools::front_end::Options {
            listen,
            backend,
            tls_cert,
            tls_key,
            mode,
            header_format,
            header,
            forward_chain,
        }),
        Some(Command::Outbound {
            command: OutboundCommand::Check,
        }) => crate::outbound::check::run(),
        Some(Command::Inspect {
            file,
            format,
            intermediates,
            compare,
        }) => crate::tools::inspect::run_compare(
            file.as_deref(),
            compare.as_deref(),
            format,
            intermediates.as_deref(),
        ),
        Some(Command::Partners { command }) => match command {
            PartnersCommand::Check { file } => crate::tools::partners::run_check(&file),
            PartnersCommand::FromSettings => crate::tools::partners::run_from_settings(),
        },
    }
}

fn parse_header_format(value: &str) -> Result<HeaderFormat, String> {
    HeaderFormat::parse(value)
        .ok_or_else(|| format!("{value:?}: expected arr, xfcc, rfc9440 or pem-urlencoded"))
}

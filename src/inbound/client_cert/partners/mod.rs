//! Partners: named identities bound to their CA, each allowed some functions.
//!
//! Owns: the partners document ([`document`]: syntax, checks and precise errors) and the
//! compiled, indexed set that names the partner a certificate belongs to ([`matcher`]).
//! Both are pure: text in, a document out; a certificate's facts and its verified chain in,
//! a partner (or a refusal) out.
//! Must not: read files, settings or the clock, verify signatures, or log. Where a document
//! comes from and when it is reloaded is `crate::inbound::partner_source`'s business.

pub mod document;
pub mod matcher;

pub use document::{parse, Document, DocumentError, Functions, Issuer, MatchBlock};
pub use matcher::{
    ChainAnchors, CompileError, Facts, Grant, MatchKind, PartnerSet, Selected,
    DEFAULT_WARNING_DAYS, IMPLICIT_PARTNER,
};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The facts `set` compares about `cert` (whose DER has the fingerprints `sha1`, `sha256`).
pub fn facts<'a>(
    cert: &'a X509Certificate<'_>,
    sha1: [u8; 20],
    sha256: [u8; 32],
    set: &PartnerSet,
) -> Facts<'a> {
    let mut f = Facts {
        sha1,
        sha256,
        ..Facts::default()
    };
    let mut cns = cert.subject().iter_common_name();
    if let (Some(first), None) = (cns.next(), cns.next()) {
        f.common_name = first.as_str().ok();
    }
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    f.serial = &raw[start..];
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => f.dns_names.push(d),
                GeneralName::URI(u) => f.uris.push(u),
                GeneralName::RFC822Name(e) => f.emails.push(e),
                _ => {}
            }
        }
    }
    if set.needs_spki() {
        f.spki = Some(matcher::spki_sha256(cert));
    }
    f
}

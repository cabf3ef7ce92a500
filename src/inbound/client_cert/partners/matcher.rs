//! The compiled partner set: which partner a certificate is, from its fields and the CA its
//! chain reached.
//!
//! Owns: resolving each partner's `issuer` against the trusted CAs, indexing every match
//! block by one of its fields (so a certificate is looked up, not compared with every
//! partner), and the rules: all fields of a block must match; a block that names the
//! certificate by a CA-vouched field (CN, SAN, serial) or that has an issuer needs a chain
//! to that issuer; exactly one partner may match.
//! The flat settings (`ALLOWED_CLIENT_CERT_*`) become one implicit partner allowed every
//! function ([`PartnerSet::from_policy`]): CNs need a chain to any configured CA (unless
//! `ALLOW_UNVERIFIED_COMMON_NAMES`), pins need none.
//! Must not: verify signatures (the caller passes the verified chain's CAs), read the clock
//! or files, or log.

use super::document::{Document, Functions, Issuer, MatchBlock};
use crate::inbound::client_cert::digest::sha256;
use crate::inbound::client_cert::error::CertError;
use crate::inbound::client_cert::policy::{Policy, Thumbprint};
use crate::inbound::client_cert::trust::TrustAnchors;
use std::sync::{Arc, LazyLock};

/// The index maps: hashed with foldhash (seeded per process), as the cache's header map is.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The name of the implicit partner made from the flat settings.
pub const IMPLICIT_PARTNER: &str = "app-settings";
/// Days before notAfter a partner's certificate is reported, unless the document says.
pub const DEFAULT_WARNING_DAYS: u32 = 30;

/// What an identified partner may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub functions: Functions,
    pub not_after_warning_days: u32,
}

static IMPLICIT: LazyLock<Arc<Grant>> = LazyLock::new(|| {
    Arc::new(Grant {
        name: IMPLICIT_PARTNER.to_owned(),
        functions: Functions::All,
        not_after_warning_days: DEFAULT_WARNING_DAYS,
    })
});

impl Grant {
    /// The implicit partner of the flat settings: every function.
    pub fn implicit() -> Arc<Self> {
        IMPLICIT.clone()
    }

    pub fn allows(&self, function: &str) -> bool {
        self.functions.allows(function)
    }
}

/// Which field identified the certificate (the block's most specific one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Thumbprint,
    Spki,
    SerialNumber,
    Uri,
    Email,
    DnsName,
    CommonName,
}

/// What must hold about the chain for a block to count.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// A pin without issuer: no chain needed.
    None,
    /// The chain must reach one of these CAs (SHA-256 of their DER).
    Anchors(Vec<[u8; 32]>),
    /// The flat settings' CNs: a chain to any configured CA.
    AnyConfigured,
    /// `ALLOW_UNVERIFIED_COMMON_NAMES`: no chain needed.
    Unverified,
}

impl Binding {
    fn needs_chain(&self) -> bool {
        matches!(self, Self::Anchors(_) | Self::AnyConfigured)
    }
}

#[derive(Debug)]
struct Block {
    partner: usize,
    /// Lowercase.
    common_name: Option<String>,
    /// Lowercase.
    dns_name: Option<String>,
    uri: Option<String>,
    /// Lowercase.
    email: Option<String>,
    serial: Option<Vec<u8>>,
    spki: Option<[u8; 32]>,
    sha256: Option<[u8; 32]>,
    sha1: Option<[u8; 20]>,
    binding: Binding,
    kind: MatchKind,
}

/// The facts about one certificate a block is compared with.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    /// The subject CN when there is exactly one.
    pub common_name: Option<&'a str>,
    pub dns_names: Vec<&'a str>,
    pub uris: Vec<&'a str>,
    pub emails: Vec<&'a str>,
    /// Unsigned big-endian bytes.
    pub serial: &'a [u8],
    /// SHA-256 of the SubjectPublicKeyInfo DER (filled when [`PartnerSet::needs_spki`]).
    pub spki: Option<[u8; 32]>,
    pub sha1: [u8; 20],
    pub sha256: [u8; 32],
}

/// The CAs a verified chain reached.
#[derive(Debug, Clone)]
pub struct ChainAnchors {
    /// SHA-256 of each configured CA on the chain.
    pub keys: Vec<[u8; 32]>,
    /// The subject of the CA that issued the leaf, for messages.
    pub issuer: String,
}

/// The partner a certificate was identified as.
#[derive(Debug, Clone)]
pub struct Selected {
    pub grant: Arc<Grant>,
    pub kind: MatchKind,
    /// Whether the match relied on the chain (its window then limits the decision).
    pub used_chain: bool,
}

/// Why a document could not be compiled against the trusted CAs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("partners[{index}] ({name:?}): {message}")]
pub struct CompileError {
    pub index: usize,
    pub name: String,
    pub message: String,
}

/// Every partner, indexed.
#[derive(Debug, Default)]
pub struct PartnerSet {
    grants: Vec<Arc<Grant>>,
    blocks: Vec<Block>,
    by_sha256: HashMap<[u8; 32], Vec<usize>>,
    by_sha1: HashMap<[u8; 20], Vec<usize>>,
    by_spki: HashMap<[u8; 32], Vec<usize>>,
    by_serial: HashMap<Vec<u8>, Vec<usize>>,
    by_uri: HashMap<String, Vec<usize>>,
    by_email: HashMap<String, Vec<usize>>,
    by_dns: HashMap<String, Vec<usize>>,
    by_cn: HashMap<String, Vec<usize>>,
}

impl PartnerSet {
    /// Compiles `doc`, resolving each issuer against `trust` (`None`: no CAs configured, so
    /// any issuer is an error).
    pub fn compile(doc: &Document, trust: Option<&TrustAnchors>) -> Result<Self, CompileError> {
        let cas = trust.map(describe_cas).unwrap_or_default();
        let mut set = Self::default();
        for (index, partner) in doc.partners.0.iter().enumerate() {
            let fail = |message: String| CompileError {
                index,
                name: partner.name.clone(),
                message,
            };
            let resolve = |issuers: &[Issuer]| -> Result<Binding, CompileError> {
                if issuers.is_empty() {
                    return Ok(Binding::None);
                }
                if trust.is_none() {
                    return Err(fail(
                        "an issuer needs the trusted CAs: set CLIENT_CERT_CA_PATH".to_owned(),
                    ));
                }
                let mut keys = Vec::new();
                for issuer in issuers {
                    let found: Vec<[u8; 32]> = cas
                        .iter()
                        .filter(|(key, subject)| match issuer {
                            Issuer::Sha256(k) => k == key,
                            Issuer::Subject(s) => normalise_subject(s) == *subject,
                        })
                        .map(|(k, _)| *k)
                        .collect();
                    if found.is_empty() {
                        return Err(fail(format!(
                            "issuer {issuer} is not a CA in CLIENT_CERT_CA_PATH (give the \
                             SHA-256 fingerprint or the subject of one of its CAs)"
                        )));
                    }
                    keys.extend(found);
                }
                keys.sort_unstable();
                keys.dedup();
                Ok(Binding::Anchors(keys))
            };
            let partner_binding = resolve(&partner.issuer)?;
            let grant = Arc::new(Grant {
                name: partner.name.clone(),
                functions: partner.functions.clone(),
                not_after_warning_days: partner
                    .not_after_warning_days
                    .unwrap_or(DEFAULT_WARNING_DAYS),
            });
            let p = set.grants.len();
            set.grants.push(grant);
            for block in &partner.blocks {
                let binding = match &block.issuer {
                    Some(own) => resolve(own)?,
                    None => partner_binding.clone(),
                };
                set.add(p, block, binding);
            }
        }
        Ok(set)
    }

    /// The flat settings as one implicit partner allowed every function (empty when both
    /// lists are empty).
    pub fn from_policy(policy: &Policy) -> Self {
        let mut set = Self::default();
        set.add_implicit(policy);
        set
    }

    /// Adds the flat settings' implicit partner to a compiled document (nothing when both
    /// lists are empty). A document partner may not use its name meanwhile.
    pub fn with_implicit(mut self, policy: &Policy) -> Result<Self, CompileError> {
        if policy.thumbprints.is_empty() && policy.common_names.is_empty() {
            return Ok(self);
        }
        if let Some(index) = self
            .grants
            .iter()
            .position(|g| g.name.eq_ignore_ascii_case(IMPLICIT_PARTNER))
        {
            return Err(CompileError {
                index,
                name: self.grants[index].name.clone(),
                message: format!(
                    "{IMPLICIT_PARTNER:?} is the implicit partner of \
                     ALLOWED_CLIENT_CERT_COMMON_NAMES/ALLOWED_CLIENT_CERT_THUMBPRINTS, which \
                     are still set: clear them once the document replaces them"
                ),
            });
        }
        self.add_implicit(policy);
        Ok(self)
    }

    fn add_implicit(&mut self, policy: &Policy) {
        if policy.thumbprints.is_empty() && policy.common_names.is_empty() {
            return;
        }
        let p = self.grants.len();
        self.grants.push(Grant::implicit());
        let set = self;
        let mut pins: Vec<&Thumbprint> = policy.thumbprints.iter().collect();
        pins.sort_by_key(|t| t.to_string());
        for pin in pins {
            let block = match pin {
                Thumbprint::Sha1(b) => MatchBlock {
                    thumbprint_sha1: Some(*b),
                    ..MatchBlock::default()
                },
                Thumbprint::Sha256(b) => MatchBlock {
                    thumbprint_sha256: Some(*b),
                    ..MatchBlock::default()
                },
            };
            set.add(p, &block, Binding::None);
        }
        let binding = if policy.allow_unverified_common_names {
            Binding::Unverified
        } else {
            Binding::AnyConfigured
        };
        for cn in &policy.common_names {
            let block = MatchBlock {
                common_name: Some(cn.clone()),
                ..MatchBlock::default()
            };
            set.add(p, &block, binding.clone());
        }
    }

    fn add(&mut self, partner: usize, b: &MatchBlock, binding: Binding) {
        let lower = |s: &Option<String>| s.as_ref().map(|v| v.to_ascii_lowercase());
        let block = Block {
            partner,
            common_name: lower(&b.common_name),
            dns_name: lower(&b.dns_name),
            uri: b.uri.clone(),
            email: lower(&b.email),
            serial: b.serial_number.clone(),
            spki: b.spki_sha256,
            sha256: b.thumbprint_sha256,
            sha1: b.thumbprint_sha1,
            binding,
            kind: MatchKind::CommonName,
        };
        let id = self.blocks.len();
        // Indexed once, by its most selective field.
        let kind = if let Some(k) = block.sha256 {
            self.by_sha256.entry(k).or_default().push(id);
            MatchKind::Thumbprint
        } else if let Some(k) = block.sha1 {
            self.by_sha1.entry(k).or_default().push(id);
            MatchKind::Thumbprint
        } else if let Some(k) = block.spki {
            self.by_spki.entry(k).or_default().push(id);
            MatchKind::Spki
        } else if let Some(k) = &block.serial {
            self.by_serial.entry(k.clone()).or_default().push(id);
            MatchKind::SerialNumber
        } else if let Some(k) = &block.uri {
            self.by_uri.entry(k.clone()).or_default().push(id);
            MatchKind::Uri
        } else if let Some(k) = &block.email {
            self.by_email.entry(k.clone()).or_default().push(id);
            MatchKind::Email
        } else if let Some(k) = &block.dns_name {
            self.by_dns.entry(k.clone()).or_default().push(id);
            MatchKind::DnsName
        } else if let Some(k) = &block.common_name {
            self.by_cn.entry(k.clone()).or_default().push(id);
            MatchKind::CommonName
        } else {
            // The document refuses empty blocks; an empty one never matches.
            return;
        };
        self.blocks.push(Block { kind, ..block });
    }

    /// Number of partners.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Every partner, in document order.
    pub fn grants(&self) -> &[Arc<Grant>] {
        &self.grants
    }

    /// Whether some block pins a public key (then [`Facts::spki`] must be filled).
    pub fn needs_spki(&self) -> bool {
        !self.by_spki.is_empty()
    }

    /// The blocks whose every field matches `facts`, ignoring the chain.
    fn candidates(&self, f: &Facts<'_>) -> Vec<usize> {
        let mut ids: Vec<usize> = Vec::new();
        let mut take = |v: Option<&Vec<usize>>| {
            if let Some(v) = v {
                ids.extend(v);
            }
        };
        take(self.by_sha256.get(&f.sha256));
        take(self.by_sha1.get(&f.sha1));
        if let Some(spki) = &f.spki {
            take(self.by_spki.get(spki));
        }
        if !self.by_serial.is_empty() {
            take(self.by_serial.get(f.serial));
        }
        for u in &f.uris {
            take(self.by_uri.get(*u));
        }
        if !self.by_email.is_empty() {
            for e in &f.emails {
                take(self.by_email.get(&e.to_ascii_lowercase()));
            }
        }
        if !self.by_dns.is_empty() {
            for d in &f.dns_names {
                take(self.by_dns.get(&d.to_ascii_lowercase()));
            }
        }
        if let Some(cn) = f.common_name {
            take(self.by_cn.get(&cn.to_ascii_lowercase()));
        }
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|id| self.blocks[*id].matches(f));
        ids
    }

    /// Identifies the partner `facts` belong to. `chain` verifies the certificate's chain
    /// to the trusted CAs; it is called at most once, and only when a matching block needs
    /// it.
    pub fn select(
        &self,
        facts: &Facts<'_>,
        chain: impl FnOnce() -> Result<ChainAnchors, String>,
    ) -> Result<Selected, CertError> {
        let candidates = self.candidates(facts);
        if candidates.is_empty() {
            return Err(CertError::NotAllowlisted);
        }
        let chain = candidates
            .iter()
            .any(|id| self.blocks[*id].binding.needs_chain())
            .then(chain);
        let mut passed: Vec<(usize, MatchKind, bool)> = Vec::new();
        for id in &candidates {
            let b = &self.blocks[*id];
            let ok = match (&b.binding, &chain) {
                (Binding::None | Binding::Unverified, _) => Some(false),
                (Binding::AnyConfigured, Some(Ok(_))) => Some(true),
                (Binding::Anchors(keys), Some(Ok(c))) => {
                    c.keys.iter().any(|k| keys.contains(k)).then_some(true)
                }
                _ => None,
            };
            if let Some(used_chain) = ok {
                if !passed.iter().any(|(p, _, _)| *p == b.partner) {
                    passed.push((b.partner, b.kind, used_chain));
                }
            }
        }
        match passed.as_slice() {
            [(p, kind, used_chain)] => Ok(Selected {
                grant: self.grants[*p].clone(),
                kind: *kind,
                used_chain: *used_chain,
            }),
            [] => {
                let first = &self.grants[self.blocks[candidates[0]].partner];
                Err(match chain {
                    Some(Ok(c)) => CertError::WrongIssuer {
                        partner: first.name.clone(),
                        issuer: c.issuer,
                    },
                    Some(Err(reason)) => CertError::UntrustedChain {
                        common_name: facts.common_name.unwrap_or_default().to_owned(),
                        reason: if first.name == IMPLICIT_PARTNER {
                            reason
                        } else {
                            format!("it matches partner {:?}, but {reason}", first.name)
                        },
                    },
                    None => CertError::NotAllowlisted,
                })
            }
            many => {
                let mut partners: Vec<String> = many
                    .iter()
                    .map(|(p, _, _)| self.grants[*p].name.clone())
                    .collect();
                partners.sort();
                Err(CertError::AmbiguousPartner { partners })
            }
        }
    }
}

impl Block {
    fn matches(&self, f: &Facts<'_>) -> bool {
        let ci = |want: &Option<String>, have: &[&str]| {
            want.as_ref()
                .is_none_or(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)))
        };
        self.sha256.is_none_or(|k| k == f.sha256)
            && self.sha1.is_none_or(|k| k == f.sha1)
            && self.spki.is_none_or(|k| f.spki == Some(k))
            && self
                .serial
                .as_ref()
                .is_none_or(|s| s.as_slice() == f.serial)
            && self
                .uri
                .as_ref()
                .is_none_or(|u| f.uris.iter().any(|h| h == u))
            && ci(&self.email, &f.emails)
            && ci(&self.dns_name, &f.dns_names)
            && ci(&self.common_name, f.common_name.as_slice())
    }
}

/// (SHA-256, normalised subject) of every trusted CA.
fn describe_cas(trust: &TrustAnchors) -> Vec<([u8; 32], String)> {
    trust
        .certificates()
        .filter_map(|c| {
            let der = c.to_der().ok()?;
            let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
            let subject = normalise_subject(&parsed.subject().to_string());
            Some((sha256(&der), subject))
        })
        .collect()
}

/// A subject compared without case and without spaces around `,` and `=`.
fn normalise_subject(s: &str) -> String {
    s.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert: &x509_parser::certificate::X509Certificate<'_>) -> [u8; 32] {
    sha256(cert.public_key().raw)
}

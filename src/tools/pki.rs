//! Certificate and key generation: the local demo PKI (`handler dev-certs`) and the
//! certificates the tests and benchmarks make per case.
//!
//! Owns: building X.509 certificates, keys and PKCS#12 bundles from a [`CertSpec`].
//! Must not: decide whether a certificate is acceptable (that is `client_cert`), or read
//! configuration. Everything here is deterministic apart from key generation and serials.

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::dsa::Dsa;
use openssl::ec::{Asn1Flag, EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Extension, X509Name, X509NameBuilder, X509};
use std::net::IpAddr;

/// The key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256: fast to generate, the default.
    EcP256,
    /// RSA 2048, what most partner PKIs still issue.
    Rsa2048,
    /// RSA with another modulus size (tests of the key policy).
    Rsa(u32),
    /// ECDSA on a named curve, given by NID.
    Ec(Nid),
    /// ECDSA on a named curve, but with the curve's parameters spelled out in the
    /// certificate instead of its name.
    EcExplicit(Nid),
    /// DSA with a modulus of this many bits.
    Dsa(u32),
    Ed25519,
}

/// The digest a generated certificate is signed with (ignored for Ed25519 issuers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigDigest {
    #[default]
    Sha256,
    Sha1,
    Md5,
}

/// An extension given as raw DER, for certificates no builder makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExtension {
    /// Dotted OID.
    pub oid: String,
    pub critical: bool,
    /// The DER of the value (the contents of extnValue).
    pub value: Vec<u8>,
}

/// An extended key usage to put in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eku {
    ClientAuth,
    ServerAuth,
    /// anyExtendedKeyUsage (2.5.29.37.0).
    Any,
    /// Any other OID in dotted form.
    Other(String),
}

/// A fixed serial number for [`CertSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// Any integer, negative ones included.
    Signed(i64),
    /// Unsigned big-endian bytes (for lengths beyond `i64`).
    Unsigned(Vec<u8>),
}

/// What to put in a certificate. Built with [`CertSpec::leaf`] or [`CertSpec::ca`] and
/// adjusted with the `with_*` methods.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// Subject attributes in order; several `CN`s are allowed on purpose (tests need them).
    pub subject: Vec<(Nid, String)>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// URI subject alternative names (SPIFFE IDs...).
    pub uris: Vec<String>,
    /// Email (rfc822Name) subject alternative names.
    pub emails: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
    /// `None` leaves the extension out entirely.
    pub ekus: Option<Vec<Eku>>,
    pub key: KeyKind,
    /// HTTP CRL distribution point URIs.
    pub crl_distribution_points: Vec<String>,
    /// Whether an issued certificate names its issuer's key (authorityKeyIdentifier).
    pub authority_key_id: bool,
    /// An OpenSSL-syntax nameConstraints value, e.g. `critical,permitted;DNS:example.com`.
    pub name_constraints: Option<String>,
    /// The X.509 version field: 2 (v3, the default), 1 (v2) or 0 (v1).
    pub version: i32,
    /// A fixed serial number; random (127 bits) when `None`.
    pub serial: Option<Serial>,
    pub digest: SigDigest,
    /// Standard extensions to leave out (basicConstraints, keyUsage, subjectKeyIdentifier,
    /// authorityKeyIdentifier, by NID).
    pub omit: Vec<Nid>,
    /// Extensions appended after the standard ones, as given.
    pub raw_extensions: Vec<RawExtension>,
    /// A CA's basicConstraints pathLenConstraint; `None` leaves it out.
    pub path_len: Option<u32>,
}

/// A certificate with its private key.
#[derive(Clone)]
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Issued")
            .field("subject", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

// === impl CertSpec ===

impl CertSpec {
    /// An end-entity certificate with one CN, clientAuth EKU, valid from an hour before
    /// `now` for `days` days.
    pub fn leaf(common_name: &str, now: i64, days: i64) -> Self {
        Self {
            subject: vec![(Nid::COMMONNAME, common_name.to_owned())],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            emails: Vec::new(),
            not_before: now - 3600,
            not_after: now + days * 86_400,
            is_ca: false,
            ekus: Some(vec![Eku::ClientAuth]),
            key: KeyKind::EcP256,
            crl_distribution_points: Vec::new(),
            authority_key_id: true,
            name_constraints: None,
            version: 2,
            serial: None,
            digest: SigDigest::Sha256,
            omit: Vec::new(),
            raw_extensions: Vec::new(),
            path_len: None,
        }
    }

    /// A CA certificate (basicConstraints CA:TRUE, keyCertSign, cRLSign), no EKU.
    pub fn ca(common_name: &str, now: i64, days: i64) -> Self {
        Self {
            is_ca: true,
            ekus: None,
            ..Self::leaf(common_name, now, days)
        }
    }

    pub fn with_validity(mut self, not_before: i64, not_after: i64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    pub fn with_ekus(mut self, ekus: Option<Vec<Eku>>) -> Self {
        self.ekus = ekus;
        self
    }

    pub fn with_subject(mut self, subject: Vec<(Nid, String)>) -> Self {
        self.subject = subject;
        self
    }

    pub fn with_dns_names(mut self, names: &[&str]) -> Self {
        self.dns_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub fn with_uris(mut self, uris: &[&str]) -> Self {
        self.uris = uris.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub fn with_emails(mut self, emails: &[&str]) -> Self {
        self.emails = emails.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub fn with_ip_addresses(mut self, ips: &[IpAddr]) -> Self {
        self.ip_addresses = ips.to_vec();
        self
    }

    pub fn with_key(mut self, key: KeyKind) -> Self {
        self.key = key;
        self
    }

    pub fn with_ca(mut self, is_ca: bool) -> Self {
        self.is_ca = is_ca;
        self
    }

    pub fn without_authority_key_id(mut self) -> Self {
        self.authority_key_id = false;
        self
    }

    pub fn with_name_constraints(mut self, value: &str) -> Self {
        self.name_constraints = Some(value.to_owned());
        self
    }

    pub fn with_version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    /// A serial from its unsigned big-endian bytes.
    pub fn with_serial(mut self, serial: &[u8]) -> Self {
        self.serial = Some(Serial::Unsigned(serial.to_vec()));
        self
    }

    /// A serial that may be negative, as some real CAs issue.
    pub fn with_signed_serial(mut self, serial: i64) -> Self {
        self.serial = Some(Serial::Signed(serial));
        self
    }

    pub fn with_digest(mut self, digest: SigDigest) -> Self {
        self.digest = digest;
        self
    }

    /// Leaves out the standard extension with this NID.
    pub fn without(mut self, nid: Nid) -> Self {
        self.omit.push(nid);
        self
    }

    /// Appends an extension with a raw DER value (`oid` dotted).
    pub fn with_raw_extension(mut self, oid: &str, critical: bool, value: &[u8]) -> Self {
        self.raw_extensions.push(RawExtension {
            oid: oid.to_owned(),
            critical,
            value: value.to_vec(),
        });
        self
    }

    /// A CA that allows at most `n` intermediates below it (pathLenConstraint).
    pub fn with_path_len(mut self, n: u32) -> Self {
        self.path_len = Some(n);
        self
    }

    pub fn with_crl_distribution_point(mut self, uri: &str) -> Self {
        self.crl_distribution_points.push(uri.to_owned());
        self
    }

    /// A self-signed certificate with a fresh key.
    pub fn self_signed(&self) -> Result<Issued, ErrorStack> {
        let key = generate_key(self.key)?;
        let cert = self.build(&key, None)?;
        Ok(Issued { cert, key })
    }

    /// A certificate with a fresh key, signed by `issuer`.
    pub fn issued_by(&self, issuer: &Issued) -> Result<Issued, ErrorStack> {
        let key = generate_key(self.key)?;
        self.issued_by_with_key(issuer, key)
    }

    /// A certificate for an existing key, signed by `issuer`. Reusing one key makes
    /// generating many unique certificates cheap (benchmarks).
    pub fn issued_by_with_key(
        &self,
        issuer: &Issued,
        key: PKey<Private>,
    ) -> Result<Issued, ErrorStack> {
        let cert = self.build(&key, Some(issuer))?;
        Ok(Issued { cert, key })
    }

    fn build(&self, key: &PKey<Private>, issuer: Option<&Issued>) -> Result<X509, ErrorStack> {
        let name = build_name(&self.subject)?;
        let mut b = X509::builder()?;
        b.set_version(self.version)?;
        let serial = match &self.serial {
            None => random_serial()?,
            Some(Serial::Signed(n)) => fixed_serial(*n)?,
            Some(Serial::Unsigned(bytes)) => BigNum::from_slice(bytes)?.to_asn1_integer()?,
        };
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        match issuer {
            Some(i) => b.set_issuer_name(i.cert.subject_name())?,
            None => b.set_issuer_name(&name)?,
        }
        b.set_pubkey(key)?;
        let (not_before, not_after) = (
            Asn1Time::from_unix(self.not_before)?,
            Asn1Time::from_unix(self.not_after)?,
        );
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;

        let keep = |nid: Nid| !self.omit.contains(&nid);
        if keep(Nid::BASIC_CONSTRAINTS) {
            let mut bc = BasicConstraints::new();
            bc.critical();
            if self.is_ca {
                bc.ca();
            }
            if let Some(n) = self.path_len {
                bc.pathlen(n);
            }
            b.append_extension(bc.build()?)?;
        }
        if keep(Nid::KEY_USAGE) {
            let mut ku = KeyUsage::new();
            ku.critical().digital_signature();
            if self.is_ca {
                ku.key_cert_sign().crl_sign();
            } else {
                ku.key_encipherment();
            }
            b.append_extension(ku.build()?)?;
        }
        if let Some(ekus) = &self.ekus {
            let mut e = ExtendedKeyUsage::new();
            for eku in ekus {
                match eku {
                    Eku::ClientAuth => e.client_auth(),
                    Eku::ServerAuth => e.server_auth(),
                    Eku::Any => e.other("anyExtendedKeyUsage"),
                    Eku::Other(oid) => e.other(oid),
                };
            }
            b.append_extension(e.build()?)?;
        }
        if keep(Nid::SUBJECT_KEY_IDENTIFIER) {
            let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
            b.append_extension(ski)?;
        }
        let aki = self.authority_key_id && keep(Nid::AUTHORITY_KEY_IDENTIFIER);
        if let Some(i) = issuer.filter(|_| aki) {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&b.x509v3_context(Some(&i.cert), None))?;
            b.append_extension(aki)?;
        }
        if !self.dns_names.is_empty()
            || !self.ip_addresses.is_empty()
            || !self.uris.is_empty()
            || !self.emails.is_empty()
        {
            let mut san = SubjectAlternativeName::new();
            for d in &self.dns_names {
                san.dns(d);
            }
            for u in &self.uris {
                san.uri(u);
            }
            for e in &self.emails {
                san.email(e);
            }
            for ip in &self.ip_addresses {
                san.ip(&ip.to_string());
            }
            let ext = san.build(&b.x509v3_context(issuer.map(|i| &*i.cert), None))?;
            b.append_extension(ext)?;
        }
        if !self.crl_distribution_points.is_empty() {
            let value = self
                .crl_distribution_points
                .iter()
                .map(|u| format!("URI:{u}"))
                .collect::<Vec<_>>()
                .join(",");
            #[allow(deprecated)] // the typed builder has no CRL distribution points
            let ext = X509Extension::new_nid(None, None, Nid::CRL_DISTRIBUTION_POINTS, &value)?;
            b.append_extension(ext)?;
        }
        if let Some(nc) = &self.name_constraints {
            #[allow(deprecated)] // the typed builders have no name constraints
            let ext = X509Extension::new_nid(None, None, Nid::NAME_CONSTRAINTS, nc)?;
            b.append_extension(ext)?;
        }
        for raw in &self.raw_extensions {
            let oid = Asn1Object::from_str(&raw.oid)?;
            let value = Asn1OctetString::new_from_bytes(&raw.value)?;
            b.append_extension(X509Extension::new_from_der(&oid, raw.critical, &value)?)?;
        }
        let signer = issuer.map_or(key, |i| &i.key);
        let digest = if signer.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            match self.digest {
                SigDigest::Sha256 => MessageDigest::sha256(),
                SigDigest::Sha1 => MessageDigest::sha1(),
                SigDigest::Md5 => MessageDigest::md5(),
            }
        };
        b.sign(signer, digest)?;
        Ok(b.build())
    }
}

// === impl Issued ===

impl Issued {
    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap_or_default()
    }

    pub fn cert_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.cert.to_pem()
    }

    /// PKCS#8 PEM of the private key.
    pub fn key_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.key.private_key_to_pem_pkcs8()
    }

    /// The certificate as the App Service front end forwards it: base64 of the DER.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.der())
    }

    /// A PKCS#12 bundle (OpenSSL 3 defaults: AES-256 + PBKDF2) with `chain` as extra certs.
    pub fn pkcs12(&self, password: &str, chain: &[&X509]) -> Result<Vec<u8>, ErrorStack> {
        let mut b = Pkcs12::builder();
        b.name("mtls-handler").pkey(&self.key).cert(&self.cert);
        if !chain.is_empty() {
            let mut stack = Stack::new()?;
            for c in chain {
                stack.push((*c).clone())?;
            }
            b.ca(stack);
        }
        b.build2(password)?.to_der()
    }
}

/// A fresh private key of the given kind.
pub fn generate_key(kind: KeyKind) -> Result<PKey<Private>, ErrorStack> {
    match kind {
        KeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?),
        KeyKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits)?),
        KeyKind::Ec(curve) => {
            let group = EcGroup::from_curve_name(curve)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyKind::EcExplicit(curve) => {
            let mut group = EcGroup::from_curve_name(curve)?;
            group.set_asn1_flag(Asn1Flag::EXPLICIT_CURVE);
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyKind::Dsa(bits) => PKey::from_dsa(Dsa::generate(bits)?),
        KeyKind::Ed25519 => PKey::generate_ed25519(),
    }
}

fn build_name(entries: &[(Nid, String)]) -> Result<X509Name, ErrorStack> {
    let mut n = X509NameBuilder::new()?;
    for (nid, value) in entries {
        n.append_entry_by_nid(*nid, value)?;
    }
    Ok(n.build())
}

fn fixed_serial(n: i64) -> Result<Asn1Integer, ErrorStack> {
    BigNum::from_dec_str(&n.to_string())?.to_asn1_integer()
}

fn random_serial() -> Result<Asn1Integer, ErrorStack> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

//! Local tools: what a developer runs beside the handler, never on the request path.
//!
//! Owns: [`dev_certs`] (a demo PKI), [`front_end`] (an App Service-like TLS front end that
//! forwards the client certificate), [`inspect`] (explaining one certificate's decision
//! with the same gate a request uses), [`partners`] (checking a partners document and
//! writing one from the flat settings) and [`pki`] (certificate generation, also used by
//! tests).
//! Must not: be used by `host`, `inbound` or `outbound` outside their tests.

pub mod dev_certs;
pub mod front_end;
pub mod inspect;
pub mod partners;
pub mod pki;

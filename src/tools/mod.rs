//! Local tools.

pub mod dev_certs;
pub mod front_end;
pub mod inspect;
pub mod pki;

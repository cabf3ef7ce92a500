//! The app's own functions: the part of this repository a fork edits.
//!
//! Owns: the list of functions the handler serves ([`all`]) and their modules. Each module
//! declares one function (name = its folder at the app root, route, methods, public or
//! gated) and holds its async handler. Adding one: a folder with a `function.json`, a module
//! here, and one line in [`all`] (see README "Add your own function"). At start-up the
//! handler refuses to run when the folders and this list disagree.
//! Must not: read the certificate header, parse host payloads or map errors to HTTP (the
//! host does, see `crate::host`); a function returns an `Answer` or an `ApiError`.

pub mod cert_info;
pub mod health;
pub mod outbound_mtls;

use crate::host::function::Function;

/// Every function this app serves, one line each.
pub fn all() -> Vec<Function> {
    vec![
        health::function(),
        cert_info::function(),
        outbound_mtls::function(),
    ]
}

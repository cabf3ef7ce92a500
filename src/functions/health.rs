//! `GET /api/health`: liveness, the outbound certificate's state and the partners
//! document's.
//!
//! Public on purpose: a monitor without an allowlisted certificate must reach it. It shows
//! nothing about callers, the app's own certificate only by thumbprint and dates, and of
//! the partners document its source, digest, load time, last reload error, shadow
//! differences and the partners whose certificates expire soon (names only).

use crate::host::answer::Answer;
use crate::host::function::AppState;
use crate::host::function::{Function, Method, Outcome, Request};
use serde_json::json;
use std::sync::Arc;

pub fn function() -> Function {
    Function::new("health", &[Method::Get], health).public()
}

async fn health(_req: Request, app: Arc<AppState>) -> Outcome {
    let partners = app.gate.partners().map(|p| p.status((app.clock)()));
    Ok(Answer::ok(&json!({
        "status": "ok",
        "outboundCertificate": app.outbound.status(),
        "partners": partners,
    })))
}

//! `GET /api/health`: liveness and the outbound certificate's state.
//!
//! Public on purpose: a monitor without an allowlisted certificate must reach it, and it
//! shows nothing about callers or partners (only the app's own certificate's thumbprint
//! and dates).

use crate::host::answer::Answer;
use crate::host::function::AppState;
use crate::host::function::{Function, Method, Outcome, Request};
use serde_json::json;
use std::sync::Arc;

pub fn function() -> Function {
    Function::new("health", &[Method::Get], health).public()
}

async fn health(_req: Request, app: Arc<AppState>) -> Outcome {
    Ok(Answer::ok(&json!({
        "status": "ok",
        "outboundCertificate": app.outbound.status(),
    })))
}

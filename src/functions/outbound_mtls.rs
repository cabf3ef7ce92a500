//! `GET /api/outbound-mtls`: calls `REMOTE_API_URL` with the app's own client certificate
//! and says how it went (status, the certificate presented, where it came from).

use crate::host::answer::Answer;
use crate::host::function::AppState;
use crate::host::function::{Function, Method, Outcome, Request};
use std::sync::Arc;
use tracing::Instrument as _;

pub fn function() -> Function {
    Function::new("outbound-mtls", &[Method::Get], outbound_mtls)
}

async fn outbound_mtls(req: Request, app: Arc<AppState>) -> Outcome {
    // Every log line of the call carries the partner that asked for it.
    let span = tracing::info_span!("invocation", function = "outbound-mtls", partner = %req.caller()?.partner());
    let success = app.outbound.call().instrument(span).await?;
    Ok(Answer::ok(&success))
}

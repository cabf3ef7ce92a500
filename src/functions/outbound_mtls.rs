//! `GET /api/outbound-mtls`: calls `REMOTE_API_URL` with the app's own client certificate
//! and says how it went (status, the certificate presented, where it came from).

use crate::host::answer::Answer;
use crate::host::function::AppState;
use crate::host::function::{Function, Method, Outcome, Request};
use std::sync::Arc;

pub fn function() -> Function {
    Function::new("outbound-mtls", &[Method::Get], outbound_mtls)
}

async fn outbound_mtls(_req: Request, app: Arc<AppState>) -> Outcome {
    let success = app.outbound.call().await?;
    Ok(Answer::ok(&success))
}

//! `POST /api/orders`: a partner places an order; the app records who placed it and, when
//! `REMOTE_API_URL` is set, passes it on to that partner API with the app's own
//! certificate. The example for README "Add your own function": in a fork this file is
//! `src/functions/orders.rs`, with `orders::function(),` in `crate::functions::all` and
//! this folder's `function.json` as `orders/function.json` at the app root.

use mtls_handler::host::answer::Answer;
use mtls_handler::host::function::AppState;
use mtls_handler::host::function::{Function, Method, Outcome, Request};
use mtls_handler::host::http_error::ApiError;
use mtls_handler::outbound::PartnerRequest;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warp::http::StatusCode;

/// Gated (the default): only callers whose client certificate the inbound policy accepts.
pub fn function() -> Function {
    Function::new("orders", &[Method::Post], place_order)
}

/// What a partner sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewOrder {
    sku: String,
    quantity: u32,
}

/// What the partner gets back (201).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Placed<'a> {
    order_id: String,
    sku: &'a str,
    quantity: u32,
    /// The caller's certificate common name (or its SHA-256 thumbprint).
    placed_by: &'a str,
    /// The status the partner API answered, when the order was passed on.
    forwarded_status: Option<u16>,
}

static NEXT_ORDER: AtomicU64 = AtomicU64::new(1);

async fn place_order(req: Request, app: Arc<AppState>) -> Outcome {
    // Who is calling: the certificate the gate accepted (never the raw header).
    let caller = req.caller()?;
    let placed_by = caller
        .common_name()
        .unwrap_or_else(|| caller.thumbprint_sha256());
    // The body: 400 `invalid_body` when it is not an order; our own rule is a 422.
    let order: NewOrder = req.json()?;
    if order.sku.trim().is_empty() || order.quantity == 0 {
        return Err(ApiError::function(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_order",
            "sku must not be empty and quantity must be at least 1",
        ));
    }
    let order_id = format!("ord-{}", NEXT_ORDER.fetch_add(1, Ordering::Relaxed));
    // Calling a partner: the app's certificate, timeouts and error codes come with it;
    // a non-2xx answer becomes a 502 `remote_error_status`.
    let forwarded_status = match app.outbound.remote_api_url() {
        None => None,
        Some(url) => {
            let call = PartnerRequest::post(url).json(&serde_json::json!({
                "orderId": order_id,
                "sku": order.sku,
                "quantity": order.quantity,
                "placedBy": placed_by,
            }));
            Some(app.outbound.request(call).await?.success()?.status)
        }
    };
    tracing::info!(
        order_id,
        placed_by,
        invocation = req.invocation_id(),
        "order placed"
    );
    let location = format!("/api/orders/{order_id}");
    let placed = Placed {
        order_id,
        sku: &order.sku,
        quantity: order.quantity,
        placed_by,
        forwarded_status,
    };
    Ok(Answer::json(StatusCode::CREATED, &placed).with_header("location", &location))
}

//! The handler with one more function, `POST /api/orders` (see `orders.rs`): the app's own
//! functions plus the example, checked at start-up against the function folders like the
//! real binary. Not deployed; `tests/example_orders.rs` drives it in both host modes.
//!
//! Run from an app root that also has `orders/function.json` (copy
//! `examples/orders/function.json` there):
//! `FUNCTIONS_APP_ROOT_PATH=/path/to/root cargo run --example orders`.

mod orders;

fn main() -> std::process::ExitCode {
    let mut functions = mtls_handler::functions::all();
    functions.push(orders::function());
    mtls_handler::host::start::serve(functions)
}

//! The `handler` binary. Everything lives in the library; see `lib.rs` for the layout.

fn main() -> std::process::ExitCode {
    mtls_handler::cli::main()
}

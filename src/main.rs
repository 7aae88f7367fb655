//! The `baton` binary: wiring only; everything lives in the `baton` library.

fn main() -> std::process::ExitCode {
    // Started as a template worker, this serves one render and exits; otherwise it enables the
    // worker for templates that compute.
    baton_core::template::worker::serve_if_requested();
    baton::cli::main()
}

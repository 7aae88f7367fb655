//! The `baton` binary: wiring only; everything lives in the `baton` library.

fn main() -> std::process::ExitCode {
    baton::cli::main()
}

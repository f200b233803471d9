//! The `ecr-multiarch` command: parse, run, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use ecr_multiarch::{
    inputs::{self, Args},
    run,
};

fn main() -> ExitCode {
    // Before the parser, which would refuse it with its own text, exit 2 and no annotation.
    if let Some(error) = inputs::not_utf8() {
        return ExitCode::from(run::refuse(&error, inputs::on_github_runner()));
    }
    let args = Args::parse();
    // One TLS stack for every client (bollard, oci-client, the AWS SDK): rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(runtime.block_on(run::main(args)))
}

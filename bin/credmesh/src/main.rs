//! `credmesh`: one binary, many roles.
//!
//! `credmesh serve <service>` runs one service from environment configuration (one
//! Kubernetes Deployment per service); `credmesh dev` runs every service in one process
//! with local defaults; the other subcommands are the operator and partner CLI. This
//! file only parses arguments and dispatches: each role lives in its own module.

mod cli;
mod dev;
mod keyfile;
mod probe;
mod profile;
mod serve;

use std::{collections::HashMap, process::ExitCode};

use clap::Parser as _;

/// mimalloc, not glibc malloc: under load glibc's arena locks are contended between the
/// tokio workers and the SQLite thread, and its allocation paths showed at the top of the
/// verify gateway's profile (cached Verify +70 % req/s with mimalloc, same bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::run(args, env)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprint!("{}", report(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error as a person reads it: the sentence, then what caused it. Never a
/// backtrace: a refused request or a bad setting is an answer, not a crash, also on a
/// machine where `RUST_BACKTRACE` is set for the panics it is meant for.
fn report(err: &anyhow::Error) -> String {
    let mut out = format!("Error: {err}\n");
    let mut causes = err.chain().skip(1).peekable();
    if causes.peek().is_some() {
        out.push_str("\nCaused by:\n");
        for (i, cause) in causes.enumerate() {
            out.push_str(&format!("    {i}: {cause}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reads_as_its_sentences_and_causes_without_a_backtrace() {
        let err = anyhow::anyhow!("no such file").context("reading the key file k.pem");
        assert_eq!(
            report(&err),
            "Error: reading the key file k.pem\n\nCaused by:\n    0: no such file\n"
        );
        assert_eq!(report(&anyhow::anyhow!("refused")), "Error: refused\n");
    }
}

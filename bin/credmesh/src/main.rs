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

use std::collections::HashMap;

use clap::Parser as _;

/// mimalloc, not glibc malloc: under load glibc's arena locks are contended between the
/// tokio workers and the SQLite thread, and its allocation paths showed at the top of the
/// verify gateway's profile (cached Verify +70 % req/s with mimalloc, same bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = cli::Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args, env))
}

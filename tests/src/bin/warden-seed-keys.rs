//! Seeds a control plane's store with API keys, for benchmarks that need a large key table
//! (100,000 keys through `wardenctl keys create` would take minutes). Run before the
//! control plane starts, on its `--data-dir`: keys are made exactly as `keys create`
//! makes them and stored in one transaction under one credentials revision. Prints the
//! first key (client `bench-client`, plan `pro`); the others belong to clients `c1`…`cN`.
//!
//!   warden-seed-keys --data-dir DIR --service bench --keys 100000

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use clap::Parser;
use warden_control_plane::ops::KeyRequest;
use warden_control_plane::ops::keys::generate;
use warden_control_plane::store::{Sqlite, Store};

/// Store seeding tool.
#[derive(Parser)]
struct Args {
    /// The control plane's --data-dir.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    service: String,
    /// Keys in all.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let store = Sqlite::open(&args.data_dir).expect("open the store");
    let request = |client: String, plan: &str| KeyRequest {
        service: args.service.clone(),
        client,
        plan: plan.to_owned(),
        ..Default::default()
    };
    let (first, key) = generate(&request("bench-client".into(), "pro")).expect("a key");
    let mut keys = vec![key];
    for i in 1..args.keys {
        keys.push(generate(&request(format!("c{i}"), "")).expect("a key").1);
    }
    store.create_keys(keys).await.expect("store the keys");
    println!("{first}");
}

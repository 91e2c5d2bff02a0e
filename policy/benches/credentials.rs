//! What a key change costs a sidecar, for 10k and 100k keys: decoding and building a
//! whole set (what a sidecar does on connect), and applying a one-key change (what a
//! revocation costs; the 1,024th change also folds the overlay into the base).
//!
//!   cargo bench -p warden-policy --bench credentials

// A benchmark: bad input should stop it loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use prost::Message;
use warden_policy::auth::{Credentials, hash_key};
use warden_proto::v1 as pb;

fn push(n: usize) -> Vec<u8> {
    let keys = (0..n)
        .map(|i| pb::ApiKey {
            id: format!("key_{i:026}"),
            sha256: hash_key(&format!("wdn_{i:064x}")).0.to_vec(),
            client: format!("client-{}", i % 5000),
            plan: ["free", "pro", "enterprise"][i % 3].into(),
            expires_unix_ms: if i % 2 == 0 { 0 } else { 1_900_000_000_000 },
            revoked_unix_ms: 0,
        })
        .collect();
    pb::Credentials { service: "orders".into(), revision: 1, keys, secrets: vec![], base_revision: 0, epoch: 1 }
        .encode_to_vec()
}

fn main() {
    println!("{:>8} {:>10} {:>18} {:>16} {:>22}", "keys", "MB", "whole set", "per 10k keys", "one-key change (avg)");
    for n in [10_000, 100_000] {
        let bytes = push(n);
        let mut whole = Duration::MAX;
        let mut creds = Credentials::default();
        for _ in 0..20 {
            let start = Instant::now();
            let proto = pb::Credentials::decode(bytes.as_slice()).expect("decode");
            creds = Credentials::compile(&proto, Some("orders")).expect("compile");
            whole = whole.min(start.elapsed());
        }
        // 2,048 revocations in a row: two folds of the overlay included in the average.
        let changes = 2048;
        let start = Instant::now();
        for i in 0..changes {
            let revoke = pb::ApiKey {
                id: format!("key_{i:026}"),
                sha256: hash_key(&format!("wdn_{i:064x}")).0.to_vec(),
                client: "client".into(),
                revoked_unix_ms: 1,
                ..Default::default()
            };
            let change = pb::Credentials {
                service: "orders".into(),
                revision: creds.revision + 1,
                keys: vec![revoke],
                secrets: vec![],
                base_revision: creds.revision,
                epoch: 1,
            }
            .encode_to_vec();
            let change = pb::Credentials::decode(change.as_slice()).expect("decode");
            creds = creds.apply(&change, Some("orders")).expect("apply");
        }
        let per_change = start.elapsed() / changes;
        let per_10k = whole.as_secs_f64() * 1e3 * 10_000.0 / n as f64;
        println!(
            "{n:>8} {:>10.1} {:>15.2} ms {per_10k:>13.2} ms {:>19.1} µs",
            bytes.len() as f64 / 1e6,
            whole.as_secs_f64() * 1e3,
            per_change.as_secs_f64() * 1e6
        );
        std::hint::black_box(&creds);
    }
}

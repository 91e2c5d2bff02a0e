//! A minimal OTLP/gRPC trace receiver for benchmarks: accepts spans, counts them, prints
//! the count every second. `warden-otlp-sink 127.0.0.1:4317`

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used)]

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4317".into());
    let collector = warden_e2e::otlp::Collector::start_on(&addr).await;
    println!("otlp sink listening on {}", collector.addr);
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = collector.count();
        if n != last {
            println!("spans {n}");
            last = n;
        }
    }
}

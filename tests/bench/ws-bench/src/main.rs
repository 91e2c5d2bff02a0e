//! The WebSocket benchmark's two ends, in Rust so neither is what limits a shared core:
//!
//!   ws-bench echo ADDR                         echoes every message on ADDR
//!   ws-bench load URL CONNS WINDOW SIZE SECS   CONNS connections to URL, each keeping WINDOW
//!                                              binary messages of SIZE bytes in flight for
//!                                              SECS s; prints {"messages": echoes received,
//!                                              "seconds": ..., "per_s": ...}
//!
//! Both batch their writes (feed, then flush when nothing more is ready), as a busy
//! WebSocket server does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("echo") => echo(&args[2]).await,
        Some("load") => {
            let n = |i: usize| args[i].parse::<u64>().expect("a number");
            load(&args[2], n(3), n(4), n(5), n(6)).await;
        }
        _ => {
            eprintln!("usage: ws-bench echo ADDR | ws-bench load URL CONNS WINDOW SIZE SECS");
            std::process::exit(2);
        }
    }
}

async fn echo(addr: &str) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
            let (tx, rx) = ws.split();
            let _ = rx.try_filter(|m| std::future::ready(m.is_binary() || m.is_text())).forward(tx).await;
        });
    }
}

async fn load(url: &str, conns: u64, window: u64, size: u64, secs: u64) {
    let received = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![b'x'; usize::try_from(size).expect("size")]);
    let mut ws = Vec::new();
    for _ in 0..conns {
        let (s, resp) = tokio_tungstenite::connect_async(url).await.expect("connect");
        assert_eq!(resp.status(), 101, "the handshake");
        ws.push(s);
    }
    let started = Instant::now();
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for s in ws {
        let (mut tx, mut rx) = s.split();
        let credit = Arc::new(Semaphore::new(usize::try_from(window).expect("window")));
        let (credit2, payload, received) = (credit.clone(), payload.clone(), received.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok(p) = credit2.acquire().await else { return };
                p.forget();
                if tokio::time::Instant::now() >= end {
                    return;
                }
                if tx.feed(Message::Binary(payload.clone())).await.is_err() {
                    return;
                }
                // Flush once no more credit is at hand: one write for a batch.
                if credit2.available_permits() == 0 && tx.flush().await.is_err() {
                    return;
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(end, rx.next()).await {
                received.fetch_add(1, Ordering::Relaxed);
                credit.add_permits(1);
            }
        }));
    }
    // At the deadline, whatever is still in flight is abandoned: a writer may be waiting
    // for credit that will not come back.
    tokio::time::sleep_until(end).await;
    for t in &tasks {
        t.abort();
    }
    let seconds = started.elapsed().as_secs_f64();
    let messages = received.load(Ordering::Relaxed);
    println!(
        "{{\"messages\": {messages}, \"seconds\": {seconds:.3}, \"per_s\": {:.0}}}",
        messages as f64 / seconds
    );
}

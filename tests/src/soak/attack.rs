//! The attacks of a soak, one kind at a time for a few seconds: the HTTP/2 floods of
//! `attacks.rs`, clients that stop reading, connections that stall during protocol
//! detection, many streams to a stalled upstream, webhook bodies that never come, and the
//! hostile spellings of `hostile.rs`. Each reports what the sidecar did about it (cut
//! off, and how fast; the statuses it answered), so the soak shows the defences working
//! hour after hour, not only that the legitimate traffic survived them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Client, attacks, hostile};

/// The kinds, in the order the soak cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    RapidReset,
    Continuation,
    Settings,
    HpackBomb,
    SlowReaders,
    StalledDetect,
    StalledUpstream,
    WebhookNoBody,
    Hostile,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::RapidReset,
        Kind::Continuation,
        Kind::Settings,
        Kind::HpackBomb,
        Kind::SlowReaders,
        Kind::StalledDetect,
        Kind::StalledUpstream,
        Kind::WebhookNoBody,
        Kind::Hostile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RapidReset => "rapid-reset",
            Kind::Continuation => "continuation-flood",
            Kind::Settings => "settings-flood",
            Kind::HpackBomb => "hpack-bomb",
            Kind::SlowReaders => "slow-readers",
            Kind::StalledDetect => "stalled-detection",
            Kind::StalledUpstream => "stalled-upstream",
            Kind::WebhookNoBody => "webhook-no-body",
            Kind::Hostile => "hostile-spellings",
        }
    }

    /// Its shade in the plot.
    pub fn color(self) -> &'static str {
        match self {
            Kind::RapidReset => "#e41a1c",
            Kind::Continuation => "#377eb8",
            Kind::Settings => "#4daf4a",
            Kind::HpackBomb => "#984ea3",
            Kind::SlowReaders => "#ff7f00",
            Kind::StalledDetect => "#a6761d",
            Kind::StalledUpstream => "#f781bf",
            Kind::WebhookNoBody => "#999999",
            Kind::Hostile => "#17becf",
        }
    }
}

/// What one run of an attack saw.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Connections opened (or, for the stalled upstream, requests sent).
    pub connections: u64,
    /// Connections the sidecar closed, and the longest it took from the connection opening.
    pub cut_off: u64,
    pub slowest_cut_off: Duration,
    /// Still open when the attack gave up waiting.
    pub not_cut_off: u64,
    /// Answers, by status and Warden's reason code (`503 upstream_overloaded`).
    pub answers: BTreeMap<String, u64>,
}

impl Outcome {
    fn closed(&mut self, after: Option<Duration>) {
        self.connections += 1;
        match after {
            Some(d) => {
                self.cut_off += 1;
                self.slowest_cut_off = self.slowest_cut_off.max(d);
            }
            None => self.not_cut_off += 1,
        }
    }

    fn answer(&mut self, what: String) {
        *self.answers.entry(what).or_default() += 1;
    }

    /// Adds another run's counts.
    pub fn add(&mut self, o: &Outcome) {
        self.connections += o.connections;
        self.cut_off += o.cut_off;
        self.not_cut_off += o.not_cut_off;
        self.slowest_cut_off = self.slowest_cut_off.max(o.slowest_cut_off);
        for (k, v) in &o.answers {
            *self.answers.entry(k.clone()).or_default() += v;
        }
    }
}

/// Where the attacks go and how long the sidecar is given to cut them off.
pub struct Target {
    pub proxy: SocketAddr,
    /// The sidecar's --header-read-timeout and --send-timeout.
    pub header_timeout: Duration,
    pub send_timeout: Duration,
}

/// Runs `kind` for about `window` (those that wait for the sidecar to cut them off take
/// as long as that takes); `seed` varies the hostile spellings from run to run.
pub async fn run(kind: Kind, t: &Target, window: Duration, seed: u64) -> Outcome {
    let grace = Duration::from_secs(5);
    match kind {
        Kind::RapidReset => floods(t.proxy, attacks::rapid_reset(5_000), 8, window, grace).await,
        Kind::Continuation => floods(t.proxy, attacks::continuation_flood(500), 8, window, grace).await,
        // Absorbed, not refused: once it is done the connection is an idle HTTP/2
        // connection that answers no PING, closed by hyper's keep-alive timeout (20 s).
        Kind::Settings => floods(t.proxy, attacks::settings_flood(100_000), 8, window, Duration::from_secs(30)).await,
        Kind::HpackBomb => floods(t.proxy, attacks::hpack_bomb(50, 4_000), 8, window, grace).await,
        Kind::SlowReaders => slow_readers(t.proxy, 16, window, t.send_timeout + grace).await,
        Kind::StalledDetect => stalled_detection(t.proxy, 10, t.header_timeout + grace).await,
        Kind::StalledUpstream => stalled_upstream(t.proxy, 100).await,
        // A signed body must start within 10 s (sidecar/src/signed_body.rs).
        Kind::WebhookNoBody => webhook_no_body(t.proxy, 32, Duration::from_secs(10) + grace).await,
        Kind::Hostile => hostile_spellings(t.proxy, 4, window, seed).await,
    }
}

/// A round of `conns` connections sending `bytes` every second of `window`; each waits
/// up to `within` for the sidecar to close it. (Rounds, not a closed loop: thousands of
/// connections a second would measure the loopback's port reuse, not the sidecar.)
async fn floods(addr: SocketAddr, bytes: Vec<u8>, conns: usize, window: Duration, within: Duration) -> Outcome {
    let bytes = Bytes::from(bytes);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..window.as_secs().max(1) {
        for _ in 0..conns {
            set.spawn(attacks::send_raw_timed(addr, bytes.clone(), within));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut out = Outcome::default();
    while let Some(r) = set.join_next().await {
        out.closed(r.unwrap_or(None));
    }
    out
}

/// Clients that ask for 64 MiB and never read: the sidecar must give up on each within
/// its send timeout. Reading would hide when: the sidecar's FIN waits behind the data it
/// could not send, so the cut-off is seen on its side of each connection, which leaves
/// ESTABLISHED when it closes (/proc/net/tcp; both ends are on this host).
async fn slow_readers(addr: SocketAddr, conns: usize, window: Duration, within: Duration) -> Outcome {
    let mut held = Vec::new();
    for _ in 0..conns {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else { continue };
        let _ = socket.set_recv_buffer_size(4096);
        let started = Instant::now();
        let Ok(mut tcp) = socket.connect(addr).await else { continue };
        let Ok(local) = tcp.local_addr() else { continue };
        if tcp.write_all(b"GET /bulk/65536 HTTP/1.1\r\nHost: soak\r\n\r\n").await.is_ok() {
            held.push((tcp, local.port(), started, None::<Duration>));
        }
    }
    let begun = Instant::now();
    while held.iter().any(|h| h.3.is_none()) && begun.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let open = established_from(addr.port());
        for h in held.iter_mut().filter(|h| h.3.is_none()) {
            if !open.contains(&h.1) {
                h.3 = Some(h.2.elapsed());
            }
        }
    }
    // Held for the window at least, as an attacker would.
    tokio::time::sleep(window.saturating_sub(begun.elapsed())).await;
    let mut out = Outcome::default();
    for (_, _, _, after) in held {
        out.closed(after);
    }
    out
}

/// The remote ports of the ESTABLISHED connections on local port `port` (IPv4).
fn established_from(port: u16) -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex_port = |a: &str| a.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl, local, remote, state: 01 is ESTABLISHED.
            (f.len() > 3 && hex_port(f[1]) == Some(port) && f[3] == "01").then(|| hex_port(f[2])).flatten()
        })
        .collect()
}

/// Reads (and drops) until the peer closes; how long after `started` that was, if within
/// `within` of now.
async fn until_closed(mut tcp: TcpStream, started: Instant, within: Duration) -> Option<Duration> {
    let mut sink = vec![0u8; 64 << 10];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// `conns` connections of each stall: one byte `P`, half the HTTP/2 preface, the whole
/// preface without its SETTINGS frame. Each must be closed within the header timeout.
async fn stalled_detection(addr: SocketAddr, conns: usize, within: Duration) -> Outcome {
    let stalls: [&[u8]; 3] = [b"P", b"PRI * HTTP/2.0\r\n", attacks::PREFACE];
    let mut waits = Vec::new();
    for bytes in stalls {
        for _ in 0..conns {
            let started = Instant::now();
            if let Some(tcp) = attacks::send_and_never_read(addr, bytes).await {
                waits.push(tokio::spawn(until_closed(tcp, started, within)));
            }
        }
    }
    let mut out = Outcome::default();
    for w in waits {
        out.closed(w.await.unwrap_or(None));
    }
    out
}

/// An upstream that accepts connections and never answers, for the route whose circuit
/// breakers the soak trips. Each connection is dropped when the sidecar drops its side.
pub async fn stalled_upstream_server() -> std::io::Result<(SocketAddr, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let open = Arc::new(AtomicU64::new(0));
    let count = open.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                count.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    Ok((addr, open))
}

/// `requests` HTTP/2 streams at once to the stalled route: past its breakers they must be
/// 503 `upstream_overloaded` at once, the rest 504 at the route's timeout.
async fn stalled_upstream(addr: SocketAddr, requests: usize) -> Outcome {
    let h2 = Client::h2();
    let url = format!("http://{addr}/stuck/x");
    let calls: Vec<_> = (0..requests)
        .map(|_| {
            let (h2, url) = (h2.clone(), url.clone());
            tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(20), h2.send(Method::GET, &url, &[], Bytes::new()));
                r.await
            })
        })
        .collect();
    let mut out = Outcome::default();
    for c in calls {
        out.connections += 1;
        let what = match c.await {
            Ok(Ok(Ok(r))) => {
                let code = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{} {code}", r.status.as_u16())
            }
            Ok(Ok(Err(e))) => format!("error {}", e.chars().take(60).collect::<String>()),
            Ok(Err(_)) => "no answer in 20 s".to_owned(),
            Err(_) => "task failed".to_owned(),
        };
        out.answer(what);
    }
    out
}

/// Signed-webhook heads that promise 60 KiB and send none of it, with a signature of the
/// right form: the sidecar must give up on each when the body does not start.
async fn webhook_no_body(addr: SocketAddr, conns: usize, within: Duration) -> Outcome {
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nhost: soak\r\ncontent-length: 61440\r\nx-hub-signature-256: sha256={}\r\n\r\n",
        "0".repeat(64)
    );
    let mut waits = Vec::new();
    for _ in 0..conns {
        let started = Instant::now();
        if let Some(tcp) = attacks::send_and_never_read(addr, head.as_bytes()).await {
            waits.push(tokio::spawn(async move {
                let mut tcp = tcp;
                let mut got = Vec::new();
                let read = tokio::time::timeout(within, tcp.read_to_end(&mut got)).await;
                (read.is_ok().then(|| started.elapsed()), hostile::status(&String::from_utf8_lossy(&got)))
            }));
        }
    }
    let mut out = Outcome::default();
    for w in waits {
        let (after, status) = w.await.unwrap_or((None, 0));
        out.closed(after);
        out.answer(if status == 0 { "closed without an answer".into() } else { status.to_string() });
    }
    out
}

/// Requests spelled every hostile way (`hostile::spelling`), `workers` at a time for
/// `window`, each on its own connection, each worker ~50 a second. Tallied by status; none
/// may go unanswered.
async fn hostile_spellings(addr: SocketAddr, workers: u64, window: Duration, seed: u64) -> Outcome {
    const BASES: [(&str, &str); 4] =
        [("GET", "/orders/1"), ("GET", "/api/items/1"), ("POST", "/hooks/github"), ("GET", "/bulk/1")];
    let until = Instant::now() + window;
    let mut set = tokio::task::JoinSet::new();
    for w in 0..workers {
        set.spawn(async move {
            let mut rng = hostile::Rng::new(seed.wrapping_mul(31).wrapping_add(w));
            let mut out = Outcome::default();
            while Instant::now() < until {
                let (method, path) = *rng.pick(&BASES);
                let req = hostile::spelling(&mut rng, method, path, "soak.example.com").to_bytes();
                let raw = match TcpStream::connect(addr).await {
                    Ok(mut tcp) => {
                        let _ = tcp.write_all(&req).await;
                        let mut got = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
                        got
                    }
                    Err(_) => Vec::new(),
                };
                out.connections += 1;
                let head: String = String::from_utf8_lossy(&raw[..raw.len().min(4096)]).into_owned();
                let status = hostile::status(&head);
                out.answer(if status == 0 { "no answer".into() } else { status.to_string() });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            out
        });
    }
    let mut out = Outcome::default();
    while let Some(r) = set.join_next().await {
        if let Ok(o) = r {
            out.add(&o);
        }
    }
    out
}

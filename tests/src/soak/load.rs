//! The legitimate side of a soak: honest requests at a fixed rate through the sidecar,
//! and every answer checked. Honest means what a well-configured client does: keep-alive
//! pools (HTTP/1.1, and HTTP/2 multiplexed on one connection), an idle pool timeout below
//! the server's keep-alive timeout so it never reuses a connection the server is closing,
//! and a deadline per request. A failure is kept with its reason, so the summary can say
//! what went wrong, not only how often.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type Http = HyperClient<HttpConnector, Full<Bytes>>;

/// The API key the load sends, switched by key churn. Each request holds its own clone of
/// the key while it runs, so whoever switched it can tell when no request still carries
/// the old one (its strong count is back to one) and only then revoke it.
pub struct CurrentKey(Mutex<Arc<str>>);

impl CurrentKey {
    pub fn new(key: &str) -> CurrentKey {
        CurrentKey(Mutex::new(key.into()))
    }

    pub fn get(&self) -> Arc<str> {
        self.0.lock().expect("lock").clone()
    }

    /// Switches to `key`; returns the old one.
    pub fn set(&self, key: &str) -> Arc<str> {
        std::mem::replace(&mut *self.0.lock().expect("lock"), key.into())
    }
}

/// What the load needs to know.
pub struct LoadConfig {
    pub proxy: SocketAddr,
    /// Requests per second, all kinds together.
    pub rate: u32,
    pub key: Arc<CurrentKey>,
    /// The key of a client whose plan allows 10/s, sent 20/s on purpose.
    pub greedy_key: String,
    pub github_secret: String,
    pub stripe_secret: String,
    /// Each request, body included, must be done within this.
    pub timeout: Duration,
}

/// A failure reason's count and when it was seen first and last (seconds into the run).
#[derive(Debug, Clone)]
pub struct Failure {
    pub count: u64,
    pub first_s: f64,
    pub last_s: f64,
}

/// Everything the load counted.
pub struct Tally {
    start: Instant,
    pub sent: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Requests sent over the limit on purpose, and how they were answered.
    pub over_sent: AtomicU64,
    pub over_429: AtomicU64,
    pub over_ok: AtomicU64,
    /// Latencies (µs) since the sampler last took them, and of the whole run.
    window: Mutex<Vec<u32>>,
    all: Mutex<Vec<u32>>,
    failures: Mutex<BTreeMap<String, Failure>>,
    /// The first failures in full (time, request, reason, what came back).
    samples: Mutex<Vec<String>>,
}

impl Tally {
    pub fn new(start: Instant) -> Tally {
        Tally {
            start,
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            over_sent: AtomicU64::new(0),
            over_429: AtomicU64::new(0),
            over_ok: AtomicU64::new(0),
            window: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            failures: Mutex::new(BTreeMap::new()),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// A legitimate request failed for `reason` (short, groups like failures together);
    /// `detail` says what exactly.
    pub fn fail(&self, reason: String, detail: String) {
        let t = self.start.elapsed().as_secs_f64();
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().expect("lock");
        let e = f.entry(reason).or_insert(Failure { count: 0, first_s: t, last_s: t });
        e.count += 1;
        e.last_s = t;
        drop(f);
        let mut s = self.samples.lock().expect("lock");
        if s.len() < 100 {
            s.push(format!("{t:.1}s {detail}"));
        }
    }

    fn latency(&self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.window.lock().expect("lock").push(us);
    }

    /// The latencies since the last call (µs); they join the whole run's.
    pub fn take_window(&self) -> Vec<u32> {
        let w = std::mem::take(&mut *self.window.lock().expect("lock"));
        self.all.lock().expect("lock").extend_from_slice(&w);
        w
    }

    /// Every latency of the run so far (µs), sorted.
    pub fn all_latencies(&self) -> Vec<u32> {
        let mut all = self.all.lock().expect("lock").clone();
        all.sort_unstable();
        all
    }

    pub fn failures(&self) -> BTreeMap<String, Failure> {
        self.failures.lock().expect("lock").clone()
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().expect("lock").clone()
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The plain route: GET, or POST with a body.
    Plain,
    /// The API-key route, with the current key.
    Api,
    /// A GitHub-signed webhook.
    Github,
    /// A Stripe-signed webhook (a timestamp inside the signature).
    Stripe,
    /// The API-key route with the greedy client's key, over its limit on purpose.
    OverLimit,
}

/// Twenty requests in a cycle: half plain, 30 % with the API key, 10 % signed webhooks,
/// 10 % over the limit; HTTP/1.1 and HTTP/2 alike.
const MIX: [(Kind, bool); 20] = {
    use Kind::*;
    [
        (Plain, false),
        (Api, true),
        (Plain, true),
        (OverLimit, false),
        (Api, false),
        (Plain, false),
        (Github, false),
        (Plain, true),
        (Api, true),
        (Plain, false),
        (Plain, true),
        (Api, false),
        (OverLimit, true),
        (Plain, false),
        (Stripe, true),
        (Plain, true),
        (Api, true),
        (Plain, false),
        (Api, false),
        (Plain, true),
    ]
};

/// An honest pool: idle connections are dropped after 1 s, before the sidecar's own
/// keep-alive timeout (its header-read timeout) can close them under a request; and
/// TCP_NODELAY, as common clients set it, or a POST's head and body wait on each other
/// (Nagle and delayed ACKs: 40 ms on loopback), which is the client's delay, not Warden's.
fn pool(h2: bool) -> Http {
    let mut b = HyperClient::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(1)).pool_timer(TokioTimer::new());
    if h2 {
        b.http2_only(true);
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    b.build(connector)
}

/// Sends `rate` requests a second until `stop`, then waits for those in flight.
pub async fn run(cfg: Arc<LoadConfig>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let clients = Arc::new((pool(false), pool(true)));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / cfg.rate.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (kind, h2) = MIX[(n % MIX.len() as u64) as usize];
        let (cfg, tally, clients) = (cfg.clone(), tally.clone(), clients.clone());
        tasks.spawn(async move {
            let client = if h2 { &clients.1 } else { &clients.0 };
            one(&cfg, &tally, client, kind, h2, n).await;
        });
        n += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// One request, checked.
async fn one(cfg: &LoadConfig, tally: &Tally, client: &Http, kind: Kind, h2: bool, n: u64) {
    let proto = if h2 { "h2" } else { "h1" };
    // Held until the answer is in: the key churn waits for it before revoking.
    let key = cfg.key.get();
    let (method, path, headers, body) = build(cfg, kind, n, &key);
    let mut req = Request::builder().method(method.clone()).uri(format!("http://{}{path}", cfg.proxy));
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    let Ok(req) = req.body(Full::new(body.clone())) else {
        return tally.fail("the tool built a bad request".into(), path);
    };
    if kind == Kind::OverLimit {
        tally.over_sent.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.sent.fetch_add(1, Ordering::Relaxed);
    }
    let started = Instant::now();
    let got = tokio::time::timeout(cfg.timeout, async {
        let resp = client.request(req).await.map_err(|e| ("transport error", format!("{e:?}")))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| ("body cut off", format!("{e:?}")))?.to_bytes();
        Ok::<_, (&str, String)>((parts, body))
    })
    .await;
    drop(key);
    let what = format!("{kind:?} {proto} {method} {path}");
    let (parts, resp_body) = match got {
        Err(_) => {
            return tally.fail(format!("{kind:?} {proto}: no answer within {:?}", cfg.timeout), what);
        }
        Ok(Err((reason, e))) => {
            let short: String = e.chars().take(160).collect();
            return tally.fail(format!("{kind:?} {proto}: {reason}"), format!("{what}: {short}"));
        }
        Ok(Ok(r)) => r,
    };
    let code = || -> String {
        serde_json::from_slice::<serde_json::Value>(&resp_body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    if kind == Kind::OverLimit && parts.status == StatusCode::TOO_MANY_REQUESTS && code() == "rate_limited" {
        tally.over_429.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if parts.status != StatusCode::OK {
        let excerpt: String = String::from_utf8_lossy(&resp_body).chars().take(300).collect();
        return tally
            .fail(format!("{kind:?} {proto}: {} {}", parts.status.as_u16(), code()), format!("{what}: {excerpt}"));
    }
    if let Err(e) = check(kind, &parts.headers, &resp_body, &path, body.len()) {
        return tally.fail(format!("{kind:?} {proto}: {e}"), what);
    }
    tally.latency(started.elapsed());
    if kind == Kind::OverLimit {
        tally.over_ok.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.ok.fetch_add(1, Ordering::Relaxed);
    }
}

type Built = (Method, String, Vec<(&'static str, String)>, Bytes);

fn build(cfg: &LoadConfig, kind: Kind, n: u64, key: &str) -> Built {
    match kind {
        Kind::Plain if n.is_multiple_of(4) => {
            (Method::POST, format!("/orders/{n}"), vec![], Bytes::from(vec![b'o'; 2048]))
        }
        Kind::Plain => (Method::GET, format!("/orders/{n}"), vec![], Bytes::new()),
        Kind::Api => (Method::GET, format!("/api/items/{n}"), vec![("x-api-key", key.to_owned())], Bytes::new()),
        Kind::OverLimit => {
            (Method::GET, format!("/api/greedy/{n}"), vec![("x-api-key", cfg.greedy_key.clone())], Bytes::new())
        }
        Kind::Github => {
            let body = webhook_body(n);
            let sig = format!("sha256={}", hmac_hex(&cfg.github_secret, &body));
            (Method::POST, "/hooks/github".into(), vec![("x-hub-signature-256", sig)], body)
        }
        Kind::Stripe => {
            let body = webhook_body(n);
            let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let signed = [format!("{t}.").as_bytes(), &body].concat();
            let sig = format!("t={t},v1={}", hmac_hex(&cfg.stripe_secret, &signed));
            (Method::POST, "/hooks/stripe".into(), vec![("stripe-signature", sig)], body)
        }
    }
}

fn webhook_body(n: u64) -> Bytes {
    Bytes::from(format!("{{\"delivery\":{n},\"event\":\"order.paid\",\"pad\":\"{}\"}}\n", "p".repeat(700)))
}

/// HMAC-SHA256 of `data` under `secret`, in hex: what GitHub and Stripe send.
pub fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// A 200 must come from the app, on the route asked for, with what Warden adds: the
/// policy's `x-soak-rev` (either of the two versions the applies alternate), the identity
/// it vouched for, and the body as sent.
fn check(kind: Kind, headers: &http::HeaderMap, body: &[u8], path: &str, sent: usize) -> Result<(), String> {
    let rev = headers.get("x-soak-rev").and_then(|v| v.to_str().ok());
    if !matches!(rev, Some("a" | "b")) {
        return Err(format!("x-soak-rev is {rev:?}"));
    }
    let echo: serde_json::Value = serde_json::from_slice(body).map_err(|_| "the app's echo is not JSON".to_owned())?;
    if echo["path"] != path {
        return Err(format!("the app saw path {}", echo["path"]));
    }
    if echo["body_len"] != sent {
        return Err(format!("the app saw {} body bytes of {sent}", echo["body_len"]));
    }
    let client = echo["headers"]["x-warden-client"].as_str();
    let want = match kind {
        Kind::Plain => None,
        Kind::Api => Some("soak"),
        Kind::OverLimit => Some("greedy"),
        Kind::Github => Some("github"),
        Kind::Stripe => Some("stripe"),
    };
    if client != want {
        return Err(format!("x-warden-client {client:?}, expected {want:?}"));
    }
    if !echo["headers"]["x-api-key"].is_null() {
        return Err("the app received the API key".into());
    }
    Ok(())
}

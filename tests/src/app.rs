//! A small upstream app for tests and the quick start: answers every request with JSON
//! describing what it received (method, path, headers, body size), so a test can assert
//! what crossed the proxy. `/slow/<ms>` waits before answering; `/stream/<n>` sends n
//! chunks of 1 KiB; `/bulk/<n>` sends n KiB as fast as it is taken; `/stall/<ms>` sends 1 KiB,
//! goes quiet for ms, then sends 1 KiB more; `/events` is a server-sent event stream whose
//! first event comes at once and second when `/events-release` is asked for (the test says
//! when, not a timer); `/fail...` answers 503.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Releases the second event of every open `/events` stream.
static EVENTS_RELEASED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// What the app saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body_len: usize,
    pub body: Bytes,
    /// The connection it came on (the proxy's side of it).
    pub peer: std::net::SocketAddr,
    pub version: http::Version,
    /// The URI's authority (HTTP/2's `:authority`), if it had one.
    pub authority: Option<String>,
}

/// A running app.
pub struct App {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl App {
    /// Starts on 127.0.0.1, port 0, answering as `name`.
    pub async fn start(name: &str) -> App {
        Self::start_on("127.0.0.1:0".parse().expect("literal"), name).await
    }

    pub async fn start_on(addr: SocketAddr, name: &str) -> App {
        let listener = TcpListener::bind(addr).await.expect("bind app");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, name.to_owned(), Some(seen.clone())));
        App { addr, seen, task }
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The last request seen.
    pub fn last(&self) -> Seen {
        self.requests().pop().expect("the app saw no request")
    }
}

/// Serves forever, keeping what it saw in `seen` (a test's app). Without `seen` it keeps
/// nothing: a long-running app (the quick start's, a soak's) would otherwise grow by every
/// request it ever answered.
pub async fn serve(listener: TcpListener, name: String, seen: Option<Arc<Mutex<Vec<Seen>>>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, peer, name.clone(), seen.clone()));
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    name: String,
    seen: Option<Arc<Mutex<Vec<Seen>>>>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path_and_query = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
    if let Some(seen) = &seen {
        seen.lock().expect("lock").push(Seen {
            method: parts.method.to_string(),
            path_and_query: path_and_query.clone(),
            headers: parts.headers.clone(),
            body_len: body.len(),
            body: body.clone(),
            peer,
            version: parts.version,
            authority: parts.uri.authority().map(ToString::to_string),
        });
    }
    let path = parts.uri.path();
    if let Some(ms) = path.strip_prefix("/slow/").and_then(|s| s.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(ms) = path.strip_prefix("/stall/").and_then(|s| s.parse::<u64>().ok()) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; 1024])))).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = tx.send(Ok(Frame::data(Bytes::from(vec![b'y'; 1024])))).await;
        });
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        return Ok(Response::builder().header("x-app", name).body(BodyExt::boxed(body)).expect("response"));
    }
    if path == "/events-release" {
        EVENTS_RELEASED.notify_waiters();
        return Ok(Response::new(Full::new(Bytes::from_static(b"released")).boxed()));
    }
    if path == "/events" {
        // Server-sent events: one at once, the next when the test releases it, then the end.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
        tokio::spawn(async move {
            // Listening before the first event goes, so a release that follows it is heard.
            let released = EVENTS_RELEASED.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"data: first\n\n")))).await;
            released.await;
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"data: second\n\n")))).await;
        });
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .header("x-app", name)
            .body(BodyExt::boxed(body))
            .expect("response"));
    }
    if path.starts_with("/fail") {
        // An app having a bad time: 503 for everything under /fail.
        let resp =
            Response::builder().status(503).header("x-app", name).body(Full::new(Bytes::from_static(b"down")).boxed());
        return Ok(resp.expect("response"));
    }
    if let Some(kib) = path.strip_prefix("/big-head/").and_then(|s| s.parse::<usize>().ok()) {
        // A response head of about `kib` KiB: that many 1 KiB headers.
        let mut resp = Response::builder().header("x-app", name);
        for i in 0..kib {
            resp = resp.header(format!("x-filler-{i}"), "f".repeat(1000));
        }
        return Ok(resp.body(Full::new(Bytes::from_static(b"ok")).boxed()).expect("response"));
    }
    if let Some(n) = path.strip_prefix("/bulk/").and_then(|s| s.parse::<usize>().ok()) {
        // N KiB as fast as the connection takes it, in 64 KiB chunks.
        let chunks = (0..n.div_ceil(64)).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 64 << 10]))));
        return Ok(Response::builder()
            .header("x-app", name)
            .body(BodyExt::boxed(StreamBody::new(tokio_stream::iter(chunks))))
            .expect("response"));
    }
    if let Some(n) = path.strip_prefix("/stream/").and_then(|s| s.parse::<usize>().ok()) {
        let chunks = (0..n).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1024]))));
        let stream = futures_stream(chunks);
        return Ok(Response::builder()
            .header("x-app", name)
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .expect("response"));
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned())))
        .collect();
    let echo = serde_json::json!({
        "app": name, "method": parts.method.as_str(), "path": path_and_query,
        "headers": headers, "body_len": body.len(), "version": format!("{:?}", parts.version),
    });
    let mut resp = Response::builder().header("content-type", "application/json").header("x-app", name);
    if path.starts_with("/app-cors") {
        // An app that answers CORS its own (too generous) way.
        resp = resp.header("access-control-allow-origin", "*");
    }
    Ok(resp.body(Full::new(Bytes::from(echo.to_string())).boxed()).expect("response"))
}

/// A stream of frames, yielding between chunks so the body really streams.
fn futures_stream<I>(iter: I) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, Infallible>>
where
    I: Iterator<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
{
    tokio_stream::StreamExt::throttle(tokio_stream::iter(iter), Duration::from_millis(1))
}

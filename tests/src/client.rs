//! A plain HTTP client for tests (hyper), returning status, headers and the whole body.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Keep-alive HTTP/1.1 client (or HTTP/2 prior knowledge with `h2`).
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Client { inner: HyperClient::builder(TokioExecutor::new()).build_http() }
    }
}

impl Client {
    /// An HTTP/2-only (h2c prior knowledge) client.
    pub fn h2() -> Client {
        Client { inner: HyperClient::builder(TokioExecutor::new()).http2_only(true).build_http() }
    }

    /// One HTTP/2 request on a new connection to `addr`, whatever `req`'s URI names: its
    /// authority goes out as `:authority` as written (`admin.example.com.`, `x@host`).
    pub async fn h2_to(addr: std::net::SocketAddr, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = send.send_request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Resp { status: parts.status, headers: parts.headers, body })
    }

    pub async fn get(&self, url: &str) -> Result<Resp, String> {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn send(&self, method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Resp, String> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self.inner.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Resp { status: parts.status, headers: parts.headers, body })
    }
}

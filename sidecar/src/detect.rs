//! Which protocol a connection speaks, found under a deadline. hyper-util's own detection
//! waits without a timer for as many bytes as tell HTTP/1.1 from HTTP/2, so a client that
//! sends `P`, or half of the HTTP/2 preface, or the whole preface and then nothing, held
//! a connection slot forever. Here the first bytes that differ from the preface mean
//! HTTP/1.1 (hyper's header-read timer covers the rest of its head); the preface and the
//! client's first frame (its SETTINGS, RFC 9113 §3.4) mean HTTP/2. All of it must arrive
//! within the header-read timeout, and what was read is replayed to hyper
//! (`client_io::ClientIo`).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// What the client sends first on an HTTP/2 connection.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header: length (3 bytes), type, flags, stream id (4).
const FRAME_HEADER: usize = 9;
/// SETTINGS payloads are 6 bytes a setting; more than this is not waited for.
const MAX_FIRST_FRAME: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Why a connection was closed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum Undetected {
    #[error("the client did not say which protocol it speaks in time")]
    Timeout,
    #[error("the client closed the connection before saying which protocol it speaks")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads the start of a connection until its protocol is known, within `within`. With
/// `h2_only` (ALPN chose h2) only the preface and first frame are waited for. Returns the
/// protocol and the bytes read, which the connection must replay.
pub async fn detect<S>(io: &mut S, within: Duration, h2_only: bool) -> Result<(Protocol, Vec<u8>), Undetected>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if let Some(protocol) = decided(&buf, h2_only) {
                return Ok(protocol);
            }
            buf.reserve(1024);
            if io.read_buf(&mut buf).await? == 0 {
                return Err(Undetected::Closed);
            }
        }
    };
    match tokio::time::timeout(within, read).await {
        Ok(Ok(protocol)) => Ok((protocol, buf)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Undetected::Timeout),
    }
}

/// The protocol, once `buf` shows it.
fn decided(buf: &[u8], h2_only: bool) -> Option<Protocol> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        // Not HTTP/2: hyper answers an ALPN-h2 connection's garbage with a GOAWAY itself.
        return (!buf.is_empty()).then_some(if h2_only { Protocol::Http2 } else { Protocol::Http1 });
    }
    let frame = buf.get(PREFACE.len()..)?;
    let header = frame.get(..FRAME_HEADER)?;
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    (frame.len() - FRAME_HEADER >= len.min(MAX_FIRST_FRAME)).then_some(Protocol::Http2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_differing_byte_means_http1_and_a_whole_first_frame_http2() {
        assert_eq!(decided(b"", false), None);
        assert_eq!(decided(b"G", false), Some(Protocol::Http1));
        assert_eq!(decided(b"P", false), None, "could still be the preface");
        assert_eq!(decided(b"POST / HTTP/1.1", false), Some(Protocol::Http1));
        assert_eq!(decided(b"PRI * HTTP/2.0\r\n", false), None);
        assert_eq!(decided(PREFACE, false), None, "the preface alone: wait for the SETTINGS frame");
        let settings = [PREFACE, &[0, 0, 6, 4, 0, 0, 0, 0, 0], &[0, 3, 0, 0, 0, 100]].concat();
        assert_eq!(decided(&settings[..settings.len() - 1], false), None);
        assert_eq!(decided(&settings, false), Some(Protocol::Http2));
        let empty = [PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat();
        assert_eq!(decided(&empty, true), Some(Protocol::Http2));
        assert_eq!(decided(b"GET", true), Some(Protocol::Http2), "ALPN said h2: hyper refuses the rest");
    }

    #[tokio::test]
    async fn a_stalled_preface_times_out_and_bytes_read_are_replayed() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"PRI * HTTP/2.0\r\n").await.unwrap();
        let stalled = detect(&mut server, Duration::from_millis(50), false).await;
        assert!(matches!(stalled, Err(Undetected::Timeout)), "{stalled:?}");

        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n").await.unwrap();
        let (protocol, read) = detect(&mut server, Duration::from_secs(5), false).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(read, b"GET / HTTP/1.1\r\n");
    }
}

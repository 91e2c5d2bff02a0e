//! A client connection as hyper sees it: the bytes protocol detection already read are
//! read again first, and a write that makes no progress for `--send-timeout` fails. A
//! client that stops reading would otherwise hold its response buffers, and the upstream
//! connection feeding them, forever (nginx's `send_timeout`, 60 s, is the anchor: the
//! clock runs between two writes that make progress, not for the whole response).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

#[derive(Debug)]
pub struct ClientIo<S> {
    inner: S,
    /// Read before hyper took over; read again first.
    prefix: Vec<u8>,
    at: usize,
    send_timeout: Duration,
    /// Armed while a write waits on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> ClientIo<S> {
    pub fn new(inner: S, prefix: Vec<u8>, send_timeout: Duration) -> Self {
        ClientIo { inner, prefix, at: 0, send_timeout, stalled: None }
    }

    /// A write is pending: fail it once the client has taken nothing for `send_timeout`.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.send_timeout;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, polled: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.check_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(polled, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_prefix_is_read_first_then_the_connection() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" / HTTP/1.1").await.unwrap();
        let mut io = ClientIo::new(server, b"GET".to_vec(), Duration::from_secs(60));
        let mut got = [0u8; 14];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_fails_the_write_after_the_send_timeout() {
        let (client, server) = tokio::io::duplex(1024);
        let mut io = ClientIo::new(server, Vec::new(), Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let err = io.write_all(&[0u8; 8192]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(client);

        // A slow reader that keeps taking bytes is not cut off, however long it takes.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = ClientIo::new(server, Vec::new(), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if client.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        io.write_all(&[0u8; 8192]).await.unwrap();
        assert!(started.elapsed() > Duration::from_secs(300));
    }
}

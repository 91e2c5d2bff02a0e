//! Connections of their own, outside the pool, for what lives as long as a session: the
//! change feed's `LISTEN` and the election's advisory lock. Each one's I/O runs on a task
//! of its own, which ends when the connection does.

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Connection};

use crate::store::error::StoreError;
use crate::store::postgres::target::{CALL_TIMEOUT, Target};

/// Connects within `CALL_TIMEOUT`; the receiver gets the (channel, payload) of every
/// notification the session receives, and ends when the connection does.
pub async fn connect(
    target: &Target,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<(String, String)>), StoreError> {
    let connecting = async {
        match &target.tls {
            Some(tls) => {
                let (client, conn) = target.config.connect(tls.clone()).await?;
                Ok((client, drive(conn)))
            }
            None => {
                let (client, conn) = target.config.connect(tokio_postgres::NoTls).await?;
                Ok((client, drive(conn)))
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, connecting)
        .await
        .map_err(|_| target.unavailable("connecting timed out"))?
        .map_err(|e: tokio_postgres::Error| target.error(e))
}

fn drive<S, T>(mut conn: Connection<S, T>) -> mpsc::UnboundedReceiver<(String, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    rx
}

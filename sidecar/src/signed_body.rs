//! Reading a signed body (a webhook's) before it is forwarded: its signature covers the
//! bytes, so they must all be here first. Such bodies share one budget
//! (`--max-buffered-bytes`), and the sender is not known until the signature checks out,
//! so the budget is taken as bytes arrive, never reserved up front: a sender that
//! declares a large body and sends nothing holds nothing. A body must also start within
//! `FIRST_BYTE` and then keep up `MIN_RATE` (after a grace period), or it is cut off:
//! otherwise a trickle could hold its share for the route's whole timeout. No bound per
//! address: behind an ingress every sender has the same one.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use warden_policy::refusal::Refusal;

/// The most a signed body may take to send its first byte.
pub const FIRST_BYTE: Duration = Duration::from_secs(10);
/// The slowest a signed body may arrive, on average, once `GRACE` has passed (Kestrel's
/// minimum request body rate is 240 bytes/s; webhooks are small and sent by machines).
pub const MIN_RATE: u64 = 1024;
pub const GRACE: Duration = Duration::from_secs(5);

/// A buffered body and the budget it holds (released when dropped).
pub struct Buffered {
    pub bytes: Bytes,
    pub _held: Option<OwnedSemaphorePermit>,
}

/// Why a body could not be buffered.
#[derive(Debug)]
pub enum BodyFailure {
    /// Too slow: the first byte, the minimum rate, or the route's timeout.
    Timeout(Duration),
    TooLarge(u64),
    /// The sidecar-wide budget is spent.
    BudgetSpent,
    /// The client broke the body off or framed it wrongly.
    Broken,
}

impl BodyFailure {
    pub fn refusal(&self) -> Refusal {
        match self {
            BodyFailure::Timeout(after) => Refusal::BodyTimeout { after: *after },
            BodyFailure::TooLarge(limit) => Refusal::BodyTooLarge { limit: *limit },
            BodyFailure::BudgetSpent => Refusal::BufferFull,
            BodyFailure::Broken => Refusal::BadBody,
        }
    }
}

/// Reads `body` whole: at most `max_body` bytes, within `timeout` in all, taking KiB
/// permits from `budget` as the bytes come.
pub async fn read<B>(
    mut body: B,
    max_body: u64,
    timeout: Duration,
    budget: &Arc<Semaphore>,
) -> Result<Buffered, BodyFailure>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let started = Instant::now();
    let end = started + timeout;
    let mut buf = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut held_kib: u64 = 0;
    loop {
        // The later of what the rate allows so far and the grace; never past the timeout.
        let (deadline, after) = if buf.is_empty() {
            (started + FIRST_BYTE, FIRST_BYTE)
        } else {
            let earned = Duration::from_millis((buf.len() as u64).saturating_mul(1000) / MIN_RATE);
            let allowed = GRACE.max(earned);
            (started + allowed, allowed)
        };
        let (deadline, after) = if deadline < end { (deadline, after) } else { (end, timeout) };
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyFailure::Timeout(after)),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyFailure::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() as u64 + data.len() as u64 > max_body {
            return Err(BodyFailure::TooLarge(max_body));
        }
        buf.extend_from_slice(&data);
        let kib = (buf.len() as u64).div_ceil(1024);
        if kib > held_kib {
            let more = u32::try_from(kib - held_kib).map_err(|_| BodyFailure::BudgetSpent)?;
            let permit = budget.clone().try_acquire_many_owned(more).map_err(|_| BodyFailure::BudgetSpent)?;
            match held.as_mut() {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            held_kib = kib;
        }
    }
    Ok(Buffered { bytes: buf.freeze(), _held: held })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    type Chunk = Result<Frame<Bytes>, Infallible>;

    fn body() -> (mpsc::Sender<Chunk>, StreamBody<ReceiverStream<Chunk>>) {
        let (tx, rx) = mpsc::channel(16);
        (tx, StreamBody::new(ReceiverStream::new(rx)))
    }

    fn kib(n: usize) -> Chunk {
        Ok(Frame::data(Bytes::from(vec![b'x'; n << 10])))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_must_start_in_time_and_keep_up_the_minimum_rate() {
        let budget = Arc::new(Semaphore::new(1024));
        let (_tx, silent) = body();
        let r = read(silent, 1 << 20, Duration::from_secs(60), &budget).await;
        assert!(matches!(r, Err(BodyFailure::Timeout(t)) if t == FIRST_BYTE), "nothing at all");

        // 2 KiB buys 2 s, the grace 5 s: a body that stops after them is cut off then.
        let (tx, trickle) = body();
        tx.send(kib(2)).await.unwrap();
        let started = Instant::now();
        let r = read(trickle, 1 << 20, Duration::from_secs(60), &budget).await;
        assert!(matches!(r, Err(BodyFailure::Timeout(_))));
        assert_eq!(started.elapsed(), GRACE);
        assert_eq!(budget.available_permits(), 1024, "what it held is back");

        // 20 KiB arriving at 2 KiB/s keeps up, and is read whole.
        let (tx, steady) = body();
        tokio::spawn(async move {
            for _ in 0..10 {
                tx.send(kib(2)).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let b = read(steady, 1 << 20, Duration::from_secs(60), &budget).await.map(|b| b.bytes.len());
        assert_eq!(b.ok(), Some(20 << 10));

        // The route's timeout is the outer bound.
        let (_tx, silent) = body();
        let r = read(silent, 1 << 20, Duration::from_secs(2), &budget).await;
        assert!(matches!(r, Err(BodyFailure::Timeout(t)) if t == Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn the_budget_is_taken_as_bytes_arrive() {
        let budget = Arc::new(Semaphore::new(8));
        let (tx, b) = body();
        tx.send(kib(3)).await.unwrap();
        tx.send(kib(3)).await.unwrap();
        drop(tx);
        let held = read(b, 1 << 20, Duration::from_secs(5), &budget).await.ok().unwrap();
        assert_eq!(budget.available_permits(), 2, "6 KiB of 8 held while the body is");
        let (tx, b) = body();
        tx.send(kib(3)).await.unwrap();
        drop(tx);
        assert!(matches!(read(b, 1 << 20, Duration::from_secs(5), &budget).await, Err(BodyFailure::BudgetSpent)));
        drop(held);
        assert_eq!(budget.available_permits(), 8);

        let (tx, b) = body();
        tx.send(kib(9)).await.unwrap();
        assert!(matches!(read(b, 8 << 10, Duration::from_secs(5), &budget).await, Err(BodyFailure::TooLarge(_))));
    }
}

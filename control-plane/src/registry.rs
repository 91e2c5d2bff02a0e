//! Who is connected and what they said: per sidecar instance, the version it ACKed, the
//! last NACK and its error, and when it was last seen. Kept in memory for `wardenctl
//! status`, and written to the store on every connect, ACK, NACK and disconnect, and for
//! every connected sidecar each `beat` (so other replicas see it as alive and
//! a restart remembers it), with the name of the replica it is on. One
//! writer task saves records in the order they happened, batching whatever queued up
//! meanwhile into one transaction (an apply to 10,000 sidecars is 10,000 ACKs: one fsync
//! each would fall hopelessly behind), keeping only each sidecar's latest record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::clock::now_unix_ms;
use crate::store::{SidecarRecord, Store, StoreError};

#[derive(Debug, Clone)]
struct Entry {
    record: SidecarRecord,
    /// Which stream owns the entry; a reconnect replaces it, so a late disconnect of
    /// the old stream does not mark the new one gone.
    stream: Option<u64>,
}

/// What a sidecar told us.
#[derive(Debug, Clone)]
pub enum Event {
    Ack(u64),
    Nack(u64, String),
    CredentialsAck(u64),
    /// It runs this candidate in shadow (0: none), or refused it with this error.
    ShadowAck(u64, String),
    Seen,
}

/// A sidecar's status row.
#[derive(Debug, Clone)]
pub struct Status {
    pub record: SidecarRecord,
    pub connected: bool,
    pub acked_credentials: u64,
}

pub struct Registry {
    /// This replica's name, written with the records of the sidecars connected to it.
    replica: String,
    entries: Mutex<HashMap<(String, String), Entry>>,
    next_stream: AtomicU64,
    /// To the writer task. Unbounded because ACK/NACK events come at the rate of applies
    /// times sidecars, and dropping one would leave `status` wrong after a restart.
    saves: mpsc::UnboundedSender<SidecarRecord>,
    /// Report streams waiting for their sidecar's Hello, by sidecar: one notification per
    /// Hello, to those waiting for that sidecar only (a reconnect storm of N sidecars
    /// wakes N waiters, not N²).
    waiting: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl Registry {
    /// Starts from what the store remembers; nobody is connected yet. A record that
    /// cannot be saved is logged and handed to `on_save_error` (to be counted).
    pub async fn load(
        store: Arc<dyn Store>,
        replica: String,
        on_save_error: impl Fn(&StoreError) + Send + 'static,
    ) -> Result<Registry, StoreError> {
        let entries = store
            .sidecars()
            .await?
            .into_iter()
            .map(|r| ((r.service.clone(), r.instance.clone()), Entry { record: r, stream: None }))
            .collect();
        let (saves, mut pending) = mpsc::unbounded_channel::<SidecarRecord>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while pending.recv_many(&mut batch, 10_000).await > 0 {
                // The latest record per sidecar is the one that counts.
                let mut latest: HashMap<(String, String), SidecarRecord> = HashMap::new();
                for r in batch.drain(..) {
                    latest.insert((r.service.clone(), r.instance.clone()), r);
                }
                if let Err(e) = store.save_sidecars(latest.into_values().collect()).await {
                    tracing::warn!(error = %e, "could not record sidecars' ACKs/NACKs");
                    on_save_error(&e);
                }
            }
        });
        Ok(Registry {
            replica,
            entries: Mutex::new(entries),
            next_stream: AtomicU64::new(1),
            saves,
            waiting: Mutex::default(),
        })
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// A sidecar said hello; returns its stream id.
    pub fn connected(&self, service: &str, instance: &str, peer: &str) -> u64 {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let e = entries.entry((service.to_owned(), instance.to_owned())).or_insert_with(|| Entry {
            record: SidecarRecord { service: service.to_owned(), instance: instance.to_owned(), ..Default::default() },
            stream: None,
        });
        e.stream = Some(stream);
        // Every stream starts from what the sidecar says it holds (a shadow: nothing).
        e.record.acked_credentials = 0;
        e.record.shadow_version = 0;
        e.record.shadow_error.clear();
        e.record.peer = peer.to_owned();
        e.record.last_seen_unix_ms = now_unix_ms();
        e.record.replica.clone_from(&self.replica);
        e.record.connected = true;
        let _ = self.saves.send(e.record.clone());
        drop(entries);
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = waiting.get(&(service.to_owned(), instance.to_owned())) {
            n.notify_waiters();
        }
        stream
    }

    /// Whether `instance` of `service` has a control stream open now.
    fn is_connected(&self, service: &str, instance: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(&(service.to_owned(), instance.to_owned())).is_some_and(|e| e.stream.is_some())
    }

    /// Whether `instance` of `service` has a control stream open, waiting up to `wait` for
    /// its Hello.
    pub async fn connected_within(&self, service: &str, instance: &str, wait: Duration) -> bool {
        let key = (service.to_owned(), instance.to_owned());
        let notify = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.entry(key.clone()).or_default().clone()
        };
        let hello = notify.notified();
        tokio::pin!(hello);
        // Registered before the check, so a Hello in between is not missed.
        hello.as_mut().enable();
        let connected = self.is_connected(service, instance)
            || (tokio::time::timeout(wait, hello).await.is_ok() && self.is_connected(service, instance));
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's and this one: no one else waits for this sidecar.
        if Arc::strong_count(&notify) == 2 {
            waiting.remove(&key);
        }
        connected
    }

    /// Records an event from the sidecar on stream `stream`; ignored if a newer stream of
    /// the same instance has taken over.
    pub fn event(&self, service: &str, instance: &str, stream: u64, event: Event) {
        let now = now_unix_ms();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = entries.get_mut(&(service.to_owned(), instance.to_owned())) else {
            return;
        };
        if e.stream != Some(stream) {
            return;
        }
        e.record.last_seen_unix_ms = now;
        match event {
            Event::Seen => return,
            Event::CredentialsAck(revision) => e.record.acked_credentials = revision,
            Event::ShadowAck(v, err) => {
                e.record.shadow_version = v;
                e.record.shadow_error = err;
            }
            Event::Ack(v) => {
                e.record.acked_version = v;
                e.record.acked_unix_ms = now;
            }
            Event::Nack(v, err) => {
                e.record.nacked_version = v;
                e.record.nack_error = err;
                e.record.nacked_unix_ms = now;
            }
        }
        // Sent under the lock, so the writer saves events in the order they were applied.
        let _ = self.saves.send(e.record.clone());
    }

    /// The stream ended.
    pub fn disconnected(&self, service: &str, instance: &str, stream: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get_mut(&(service.to_owned(), instance.to_owned()))
            && e.stream == Some(stream)
        {
            e.stream = None;
            e.record.connected = false;
            e.record.last_seen_unix_ms = now_unix_ms();
            let _ = self.saves.send(e.record.clone());
        }
    }

    /// Queues the records of every sidecar connected here, with when each was last seen:
    /// one batch for the lot (not a write per sidecar per heartbeat).
    pub fn beat(&self) {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for e in entries.values().filter(|e| e.stream.is_some()) {
            let _ = self.saves.send(e.record.clone());
        }
    }

    /// Every known sidecar, optionally of one service, sorted.
    pub fn list(&self, service: Option<&str>) -> Vec<Status> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<Status> = entries
            .values()
            .filter(|e| service.is_none_or(|s| e.record.service == s))
            .map(|e| Status {
                record: e.record.clone(),
                connected: e.stream.is_some(),
                acked_credentials: e.record.acked_credentials,
            })
            .collect();
        out.sort_by(|a, b| (&a.record.service, &a.record.instance).cmp(&(&b.record.service, &b.record.instance)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_report_waits_for_its_own_sidecars_hello_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::Sqlite::open(dir.path()).unwrap());
        let registry = Arc::new(Registry::load(store, "cp-0".into(), |_| {}).await.unwrap());
        let r = registry.clone();
        let waiter = tokio::spawn(async move { r.connected_within("orders", "o-1", Duration::from_secs(10)).await });
        tokio::task::yield_now().await;
        registry.connected("orders", "o-2", "peer");
        registry.connected("orders", "o-1", "peer");
        assert!(waiter.await.unwrap(), "o-1's Hello ends the wait");
        assert!(!registry.connected_within("orders", "ghost", Duration::from_millis(20)).await);
        let stream = registry.connected("billing", "b-1", "peer");
        registry.disconnected("billing", "b-1", stream);
        assert!(!registry.connected_within("billing", "b-1", Duration::from_millis(20)).await, "gone is not connected");
        assert!(registry.waiting.lock().unwrap().is_empty(), "no waiter left behind");
    }
}

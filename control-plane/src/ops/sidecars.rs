//! The sidecars' side of the control plane. A control stream is a `Session`: its Hello
//! registers the sidecar, it is sent the service's snapshots and the credentials it
//! misses, and what it says (ACK, NACK, credentials ACK) goes to the registry, the rollout
//! traces and the metrics. A report stream is a `Reporter`: quota demand in and shares
//! out, deny records into the store, route traffic into the `top` view. Both undo what
//! they registered when dropped, so a stream that ends any way leaves nothing behind.
//!
//! What a sidecar may speak for is narrower than its token (tokens are per service, not
//! per instance): a report stream must name an instance that has a control stream open,
//! and every batch on it that same service and instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use warden_proto::Encoded;
use warden_proto::v1 as pb;

use crate::hub::{Candidate, CredentialsState, global_limits};
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::ops::receipt::{check_names, clean_denials, clean_routes, clean_samples, clean_shadow_counts, nack_error};
use crate::quota::{Reply, Usage};
use crate::registry::Event;
use crate::store::{Denial, Sample, ShadowCount};
use crate::traffic::RouteTraffic;

/// How long a report stream waits for its sidecar's Hello: a sidecar opens both streams at
/// once, so its report may arrive first.
const HELLO_WAIT: Duration = Duration::from_secs(2);

/// How often the records of the sidecars connected here are written (with when each was
/// last seen), so other replicas count them as connected: one batch each time.
const BEAT: Duration = Duration::from_secs(5);

/// Report streams are numbered apart from control streams.
static REPORT_STREAMS: AtomicU64 = AtomicU64::new(1);

/// A sidecar's first message on its control stream.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub service: String,
    pub instance: String,
    /// Its address as the server saw it.
    pub peer: String,
    /// The policy version it holds (0: none).
    pub version: u64,
    /// The credentials it holds, from its state directory: nothing older is sent again.
    pub credentials_epoch: u64,
    pub credentials_revision: u64,
}

/// One sidecar's control stream.
pub struct Session {
    cp: Arc<ControlPlane>,
    service: String,
    instance: String,
    stream: u64,
    /// The credentials (epoch, revision) it holds: from its Hello, then what was sent.
    held: (u64, u64),
    /// Nothing has been sent yet: what it holds comes from its Hello.
    from_hello: bool,
    /// What it was last sent to serve and to shadow.
    sent: Sent,
}

/// What one sidecar was last sent: the policy version (0: none yet) and the candidate to
/// shadow (0: none; `u64::MAX`: unknown, so the first message says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    policy: u64,
    shadow: u64,
}

impl Default for Sent {
    fn default() -> Self {
        // A sidecar that reconnects may still shadow a rollout that ended meanwhile.
        Sent { policy: 0, shadow: u64::MAX }
    }
}

impl Sent {
    /// What `instance` must be sent to serve the live snapshot (or the candidate, if it
    /// is one of a canary's sidecars) and to shadow the candidate (or stop); nothing
    /// already sent is sent again.
    pub fn next(
        &mut self,
        instance: &str,
        live: Option<&Arc<Encoded<pb::Snapshot>>>,
        candidate: Option<&Arc<Candidate>>,
    ) -> Option<PolicyPush> {
        let (serve_candidate, shadow) = candidate.map_or((false, false), |c| c.for_instance(instance));
        let policy = match (serve_candidate, candidate) {
            (true, Some(c)) => Some(&c.snapshot),
            _ => live,
        };
        let mut push = PolicyPush::default();
        if let Some(p) = policy
            && p.version != self.policy
        {
            self.policy = p.version;
            push.snapshot = Some(p.bytes());
        }
        let shadow = candidate.filter(|_| shadow).map(|c| &c.snapshot);
        let shadow_version = shadow.map_or(0, |s| s.version);
        if shadow_version != self.shadow {
            self.shadow = shadow_version;
            push.shadow = Some(shadow.map(|s| s.bytes()).unwrap_or_default());
        }
        (push.snapshot.is_some() || push.shadow.is_some()).then_some(push)
    }
}

/// A policy message for one sidecar: its snapshot, the candidate to shadow (empty bytes:
/// stop), or both.
#[derive(Debug, Default)]
pub struct PolicyPush {
    pub snapshot: Option<bytes::Bytes>,
    pub shadow: Option<bytes::Bytes>,
}

impl ControlPlane {
    /// Writes the connected sidecars' records every `BEAT` until the control plane is
    /// dropped.
    pub(super) fn beat_sidecars(self: &Arc<Self>) {
        self.every(BEAT, |cp| async move { cp.registry.beat() });
    }

    /// Registers a sidecar that said Hello, and makes sure its service's credentials are
    /// published (a service with keys but no policy yet has nothing published).
    pub async fn hello(self: &Arc<Self>, hello: Hello) -> Result<Session, OpsError> {
        check_names(&hello.service, &hello.instance)?;
        let stream = self.registry.connected(&hello.service, &hello.instance, &hello.peer);
        tracing::info!(service = %hello.service, instance = %hello.instance, peer = %hello.peer, version = hello.version, "sidecar connected");
        let session = Session {
            cp: self.clone(),
            held: (hello.credentials_epoch, hello.credentials_revision),
            service: hello.service,
            instance: hello.instance,
            stream,
            from_hello: true,
            sent: Sent::default(),
        };
        if self.hub.credentials(&session.service).is_none() {
            self.refresh_credentials(&session.service).await?;
        }
        Ok(session)
    }

    /// Opens a report stream for `instance` of `service`, once it has a control stream
    /// open (waiting up to `HELLO_WAIT` for its Hello).
    pub async fn open_report(self: &Arc<Self>, service: &str, instance: &str) -> Result<Reporter, OpsError> {
        check_names(service, instance)?;
        if !self.registry.connected_within(service, instance, HELLO_WAIT).await {
            return Err(OpsError::Precondition(format!(
                "no sidecar {service}/{instance} is connected: a report stream needs the instance's control stream open"
            )));
        }
        let stream = REPORT_STREAMS.fetch_add(1, Ordering::Relaxed);
        let reporter =
            Reporter { cp: self.clone(), stream, service: service.to_owned(), instance: instance.to_owned() };
        self.quotas.open(stream, reporter.global_limits());
        Ok(reporter)
    }
}

impl Session {
    /// The service's current snapshot and every later one (the current one is marked
    /// unseen, so it is sent first).
    pub fn snapshots(&self) -> watch::Receiver<Option<Arc<Encoded<pb::Snapshot>>>> {
        let mut rx = self.cp.hub.subscribe(&self.service);
        rx.mark_changed();
        rx
    }

    /// The service's rollout candidate and every change of it.
    pub fn candidates(&self) -> watch::Receiver<Option<Arc<Candidate>>> {
        self.cp.hub.subscribe_candidate(&self.service)
    }

    /// What to send so the sidecar serves what it should: the live snapshot, or the
    /// candidate if it is one of a canary's sidecars; and the candidate to decide in shadow
    /// (or to stop shadowing). Nothing already sent is sent again.
    pub fn policy_to_send(
        &mut self,
        live: Option<&Arc<Encoded<pb::Snapshot>>>,
        candidate: Option<&Arc<Candidate>>,
    ) -> Option<PolicyPush> {
        self.sent.next(&self.instance, live, candidate)
    }

    /// The service's current credentials and every later change (the current ones marked
    /// unseen).
    pub fn credentials(&self) -> watch::Receiver<Option<Arc<CredentialsState>>> {
        let mut rx = self.cp.hub.subscribe_credentials(&self.service);
        rx.mark_changed();
        rx
    }

    /// What to send so the sidecar holds `current`: the changes it misses, or the whole
    /// set, or nothing. Returned messages count as held once sent.
    pub fn credentials_to_send(&mut self, current: &CredentialsState) -> Vec<Arc<Encoded<pb::Credentials>>> {
        let changes = current.since(self.held.0, self.held.1);
        if std::mem::take(&mut self.from_hello) && changes.is_empty() {
            // It reconnected holding the current revision (written to its disk before it
            // ACKed it), so nothing is sent and no ACK will come: its Hello is the ACK, or
            // `status` shows it behind until the next change.
            let ack = Event::CredentialsAck(current.full.revision);
            self.cp.registry.event(&self.service, &self.instance, self.stream, ack);
        }
        self.held = (current.full.epoch, current.full.revision);
        changes
    }

    /// The sidecar said something: an ACK, a NACK (its error made safe to show), a
    /// credentials ACK, or anything else (it is alive).
    pub fn said(&self, event: Event) {
        let event = match event {
            Event::Nack(version, error) => {
                let error = nack_error(&error);
                tracing::warn!(service = %self.service, instance = %self.instance, version, %error, "sidecar NACKed a snapshot");
                self.cp.metrics.nack(&self.service);
                Event::Nack(version, error)
            }
            Event::ShadowAck(version, error) if !error.is_empty() => {
                let error = nack_error(&error);
                tracing::warn!(service = %self.service, instance = %self.instance, version, %error, "sidecar refused to shadow a candidate");
                Event::ShadowAck(version, error)
            }
            other => other,
        };
        self.cp.traces.observe(&self.service, &self.instance, &event);
        self.cp.registry.event(&self.service, &self.instance, self.stream, event);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cp.registry.disconnected(&self.service, &self.instance, self.stream);
        tracing::info!(service = %self.service, instance = %self.instance, "sidecar disconnected");
    }
}

/// One batch on a report stream.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub service: String,
    pub instance: String,
    /// What the batch covers, since the one before.
    pub interval_ms: u64,
    pub usage: Vec<Usage>,
    pub denials: Vec<Denial>,
    /// Deny records the sidecar dropped since its last batch (its queue was full).
    pub denials_dropped: u64,
    pub routes: Vec<RouteTraffic>,
    pub samples: Vec<Sample>,
    /// Samples the sidecar dropped since its last batch.
    pub samples_dropped: u64,
    /// Where a candidate in shadow decided otherwise, since its last batch.
    pub shadow_counts: Vec<ShadowCount>,
}

/// What a batch brought to be stored, once the quota reply is on its way.
#[derive(Debug, Default)]
pub struct ToStore {
    denials: Vec<Denial>,
    samples: Vec<Sample>,
    shadow_counts: Vec<ShadowCount>,
}

/// One sidecar's report stream.
pub struct Reporter {
    cp: Arc<ControlPlane>,
    stream: u64,
    service: String,
    instance: String,
}

impl Reporter {
    /// Records a batch. Returns the quota reply, to send at once, and the deny records
    /// and samples made safe, to store after it (storing waits on a disk write). A batch
    /// naming another sidecar is refused: a stream speaks for the sidecar it opened as only.
    pub fn record(&self, report: Report) -> Result<(Reply, ToStore), OpsError> {
        let (service, instance) = (&self.service, &self.instance);
        if &report.service != service || &report.instance != instance {
            tracing::warn!(%service, %instance, "a report batch named another sidecar; closing its stream");
            return Err(OpsError::Invalid(format!(
                "this report stream is for {service}/{instance}; a batch named another"
            )));
        }
        // Its policy may have changed, and with it the global limits it may report on.
        self.cp.quotas.set_limits(self.stream, self.global_limits());
        let reply = self.cp.quotas.report(self.stream, report.interval_ms, &report.usage, Instant::now());
        let mut denials = report.denials;
        let dropped = report.denials_dropped.saturating_add(clean_denials(&mut denials) as u64);
        if dropped > 0 {
            tracing::warn!(%service, %instance, dropped, "a sidecar dropped deny records (its queue was full)");
        }
        let mut routes = report.routes;
        if !routes.is_empty() {
            clean_routes(&mut routes);
            let canary = self.cp.hub.candidate(service).is_some_and(|c| c.canary.is_some());
            self.cp.traffic.report(service, instance, routes, canary);
        }
        let mut samples = report.samples;
        let dropped = report.samples_dropped.saturating_add(clean_samples(&mut samples) as u64);
        if dropped > 0 {
            tracing::debug!(%service, %instance, dropped, "a sidecar dropped decision samples (its queue was full)");
        }
        let mut shadow_counts = report.shadow_counts;
        clean_shadow_counts(&mut shadow_counts);
        Ok((reply, ToStore { denials, samples, shadow_counts }))
    }

    /// Adds deny records to the deny log and samples to the samples (made safe by
    /// `record`); a failure is logged and counted, and loses only these.
    pub async fn store(&self, records: ToStore) {
        // Logged and counted by `stored`; the stream goes on.
        if !records.denials.is_empty() {
            let insert =
                self.cp.store.insert_denials(&self.service, &self.instance, records.denials, self.cp.retention);
            let _ = self.cp.stored("insert_denials", insert).await;
        }
        if !records.shadow_counts.is_empty() {
            let insert = self.cp.store.add_shadow_counts(&self.service, records.shadow_counts);
            let _ = self.cp.stored("add_shadow_counts", insert).await;
        }
        if !records.samples.is_empty() {
            let retention = self.cp.sample_retention;
            let insert = self.cp.store.insert_samples(&self.service, &self.instance, records.samples, retention);
            let _ = self.cp.stored("insert_samples", insert).await;
        }
    }

    /// The global limits its service's current policy has.
    fn global_limits(&self) -> Vec<String> {
        self.cp.hub.snapshot(&self.service).map(|s| global_limits(&s)).unwrap_or_default()
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.cp.quotas.close(self.stream);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn snapshot(version: u64) -> Arc<Encoded<pb::Snapshot>> {
        Arc::new(Encoded::new(pb::Snapshot { service: "s".into(), version, ..Default::default() }))
    }

    fn sent_versions(push: Option<PolicyPush>) -> (Option<u64>, Option<u64>) {
        use prost::Message;
        let version = |b: bytes::Bytes| if b.is_empty() { 0 } else { pb::Snapshot::decode(b).unwrap().version };
        push.map_or((None, None), |p| (p.snapshot.map(version), p.shadow.map(version)))
    }

    #[test]
    fn each_sidecar_is_sent_what_it_should_serve_and_shadow_once() {
        let (v1, v2, v3) = (snapshot(1), snapshot(2), snapshot(3));
        let shadow = |s: &Arc<Encoded<pb::Snapshot>>| Arc::new(Candidate { snapshot: s.clone(), canary: None });
        let canary = |s: &Arc<Encoded<pb::Snapshot>>| {
            Arc::new(Candidate { snapshot: s.clone(), canary: Some(HashSet::from(["c-1".to_owned()])) })
        };
        let mut sent = Sent::default();
        // A (re)connect says there is nothing to shadow, whatever the sidecar held.
        assert_eq!(sent_versions(sent.next("c-1", Some(&v1), None)), (Some(1), Some(0)));
        assert_eq!(sent_versions(sent.next("c-1", Some(&v1), None)), (None, None), "nothing twice");
        // A shadow, then a forced switch to another candidate coalesced into one change.
        assert_eq!(sent_versions(sent.next("c-1", Some(&v1), Some(&shadow(&v2)))), (None, Some(2)));
        assert_eq!(sent_versions(sent.next("c-1", Some(&v1), Some(&shadow(&v3)))), (None, Some(3)));
        // Promoted: the new live version, and the shadow stops.
        assert_eq!(sent_versions(sent.next("c-1", Some(&v3), None)), (Some(3), Some(0)));
        // A canary: its sidecars serve the candidate, the others the live version.
        let mut baseline = Sent::default();
        assert_eq!(sent_versions(baseline.next("c-2", Some(&v1), Some(&canary(&v2)))), (Some(1), Some(0)));
        let mut on_canary = Sent::default();
        assert_eq!(sent_versions(on_canary.next("c-1", Some(&v1), Some(&canary(&v2)))), (Some(2), Some(0)));
        // Aborted: back to the live version; promoted instead, nothing new for the canary.
        let mut aborted = on_canary;
        assert_eq!(sent_versions(aborted.next("c-1", Some(&v1), None)), (Some(1), None));
        assert_eq!(sent_versions(on_canary.next("c-1", Some(&v2), None)), (None, None));
        assert_eq!(sent_versions(baseline.next("c-2", Some(&v2), None)), (Some(2), None));
    }
}

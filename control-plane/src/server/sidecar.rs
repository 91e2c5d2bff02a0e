//! `SidecarService`: one stream per sidecar. Waits for Hello, sends the service's current
//! snapshot and every later one, and records ACKs, NACKs and heartbeats in the registry.
//! Beside it each sidecar keeps a report stream (quota demand, deny records, traffic).
//!
//! What a sidecar may speak for: its token admits it to one service (or, the shared token,
//! to any), and nothing finer, since tokens are per service, not per instance. So a report
//! stream must name a service its token admits and an instance of that service that has a
//! control stream open (visible in `wardenctl status`, with its peer address), and every
//! batch on it must name that same service and instance. What either stream sends is
//! checked or made safe on receipt (`receipt.rs`).

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warden_proto::v1::sidecar_message::Kind;
use warden_proto::v1::sidecar_service_server::SidecarService;
use warden_proto::v1::{ReportBatch, ReportReply, SidecarMessage, SnapshotPush};

use super::{Admitted, ControlPlane, receipt};
use crate::hub::global_limits;
use crate::registry::Event;

/// The sidecar-facing API over the shared control plane.
pub struct SidecarApi(pub Arc<ControlPlane>);

/// How long a report stream waits for its sidecar's Hello: a sidecar opens both streams at
/// once, so its report may arrive first.
const HELLO_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the token interceptor admitted; refusing when it did not run (fail safe).
fn admitted<T>(req: &Request<T>) -> Result<Admitted, Status> {
    req.extensions().get::<Admitted>().cloned().ok_or_else(|| Status::internal("no token check ran"))
}

type PushStream = Pin<Box<dyn Stream<Item = Result<SnapshotPush, Status>> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<ReportReply, Status>> + Send>>;

/// Report streams are numbered apart from subscriptions.
static REPORT_STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[tonic::async_trait]
impl SidecarService for SidecarApi {
    type SubscribeStream = PushStream;
    type ReportStream = ReplyStream;

    async fn subscribe(&self, req: Request<Streaming<SidecarMessage>>) -> Result<Response<PushStream>, Status> {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let admitted = admitted(&req)?;
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(SidecarMessage { kind: Some(Kind::Hello(h)) }) => h,
            _ => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        receipt::check_names(&hello.service, &hello.instance)?;
        admitted.check(&hello.service)?;
        let stream_id = self.0.registry.connected(&hello.service, &hello.instance, &peer);
        tracing::info!(service = %hello.service, instance = %hello.instance, %peer, version = hello.version, "sidecar connected");

        let mut snapshots = self.0.hub.subscribe(&hello.service);
        snapshots.mark_changed();
        let mut credentials = self.0.hub.subscribe_credentials(&hello.service);
        if credentials.borrow().is_none() {
            // A service with keys but no policy yet has nothing published: read it now.
            self.0.refresh_credentials(&hello.service).await.map_err(|e| Status::internal(e.to_string()))?;
        }
        credentials.mark_changed();
        // What the sidecar holds: from its disk at first, then what was sent.
        let mut held = (hello.credentials_epoch, hello.credentials_revision);
        let mut from_hello = true;
        let (tx, rx) = mpsc::channel(4);
        let cp = self.0.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Credentials first: the first policy must not meet an empty key table.
                    biased;
                    changed = credentials.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let Some(current) = credentials.borrow_and_update().clone() else { continue };
                        let changes = current.since(held.0, held.1);
                        if std::mem::take(&mut from_hello) && changes.is_empty() {
                            // It reconnected holding the current revision (written to its disk
                            // before it ACKed it), so nothing is sent and no ACK will come: its
                            // Hello is the ACK, or `status` shows it behind until the next change.
                            let ack = Event::CredentialsAck(current.full.revision);
                            cp.registry.event(&hello.service, &hello.instance, stream_id, ack);
                        }
                        let mut closed = false;
                        for c in changes {
                            let push = SnapshotPush { snapshot: None, credentials: Some(c.bytes()) };
                            if tx.send(Ok(push)).await.is_err() {
                                closed = true;
                                break;
                            }
                        }
                        if closed {
                            break;
                        }
                        held = (current.full.epoch, current.full.revision);
                    }
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let current = snapshots.borrow_and_update().clone();
                        if let Some(s) = current
                            && tx.send(Ok(SnapshotPush { snapshot: Some(s.bytes()), credentials: None })).await.is_err()
                        {
                            break;
                        }
                    }
                    msg = inbound.message() => {
                        let event = match msg {
                            Ok(Some(SidecarMessage { kind: Some(Kind::Ack(a)) })) => Event::Ack(a.version),
                            Ok(Some(SidecarMessage { kind: Some(Kind::CredentialsAck(a)) })) => Event::CredentialsAck(a.revision),
                            Ok(Some(SidecarMessage { kind: Some(Kind::Nack(n)) })) => {
                                let error = receipt::nack_error(&n.error);
                                tracing::warn!(service = %hello.service, instance = %hello.instance, version = n.version, %error, "sidecar NACKed a snapshot");
                                Event::Nack(n.version, error)
                            }
                            Ok(Some(_)) => Event::Seen,
                            Ok(None) | Err(_) => break,
                        };
                        cp.rollouts.observe(&hello.service, &hello.instance, &event);
                        cp.registry.event(&hello.service, &hello.instance, stream_id, event);
                    }
                }
            }
            cp.registry.disconnected(&hello.service, &hello.instance, stream_id);
            tracing::info!(service = %hello.service, instance = %hello.instance, "sidecar disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report(&self, req: Request<Streaming<ReportBatch>>) -> Result<Response<ReplyStream>, Status> {
        let admitted = admitted(&req)?;
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.ok_or_else(|| Status::invalid_argument("no first batch"))?;
        receipt::check_names(&first.service, &first.instance)?;
        admitted.check(&first.service)?;
        wait_for_hello(&self.0, &first.service, &first.instance).await?;
        let stream = REPORT_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (service, instance) = (first.service.clone(), first.instance.clone());
        let limits_of = {
            let service = service.clone();
            move |cp: &ControlPlane| cp.hub.snapshot(&service).map(|s| global_limits(&s)).unwrap_or_default()
        };
        self.0.quotas.open(stream, limits_of(&self.0));
        let (tx, rx) = mpsc::channel(4);
        let cp = self.0.clone();
        tokio::spawn(async move {
            let mut batch = Some(first);
            while let Some(mut b) = batch.take() {
                // A stream speaks for the sidecar it opened as, and for nobody else.
                if b.service != service || b.instance != instance {
                    tracing::warn!(%service, %instance, "a report batch named another sidecar; closing its stream");
                    let refusal = format!("this report stream is for {service}/{instance}; a batch named another");
                    let _ = tx.send(Err(Status::invalid_argument(refusal))).await;
                    break;
                }
                cp.quotas.set_limits(stream, limits_of(&cp));
                let reply = cp.quotas.report(stream, &b, std::time::Instant::now());
                let mut denials = std::mem::take(&mut b.denials);
                let dropped = b.denials_dropped.saturating_add(receipt::clean_denials(&mut denials) as u64);
                if dropped > 0 {
                    tracing::warn!(%service, %instance, dropped, "a sidecar dropped deny records (its queue was full)");
                }
                if !b.routes.is_empty() {
                    receipt::clean_routes(&mut b.routes);
                    cp.traffic.report(&service, &instance, std::mem::take(&mut b.routes));
                }
                // The quota reply first: storing deny records waits on a disk write.
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
                if !denials.is_empty()
                    && let Err(e) = cp.store.insert_denials(&service, &instance, denials, cp.retention).await
                {
                    tracing::warn!(error = %e, "could not store deny records");
                }
                batch = match inbound.message().await {
                    Ok(Some(next)) => Some(next),
                    Ok(None) | Err(_) => None,
                };
            }
            cp.quotas.close(stream);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Waits (up to `HELLO_WAIT`) until `instance` of `service` has a control stream open.
async fn wait_for_hello(cp: &ControlPlane, service: &str, instance: &str) -> Result<(), Status> {
    if cp.registry.connected_within(service, instance, HELLO_WAIT).await {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "no sidecar {service}/{instance} is connected: a report stream needs the instance's control stream open"
    )))
}

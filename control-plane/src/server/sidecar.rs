//! `SidecarService`: one control stream and one report stream per sidecar. The control
//! stream waits for Hello, then sends the service's snapshots and credentials as the
//! operations layer publishes them and hands back what the sidecar says; the report
//! stream hands each batch to the operations layer and answers with quota shares.
//!
//! What a sidecar may speak for starts here: its token admits it to one service (or, the
//! shared token, to any), checked against the service its first message names.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warden_proto::Encoded;
use warden_proto::v1 as pb;
use warden_proto::v1::sidecar_message::Kind;
use warden_proto::v1::sidecar_service_server::SidecarService;
use warden_proto::v1::{ReportBatch, ReportReply, SidecarMessage, SnapshotPush};

use crate::ops::{Candidate, ControlPlane, Event, Hello, Session, check_names};
use crate::server::auth::Admitted;
use crate::server::convert;
use crate::server::status::status;

/// The sidecar-facing API over the shared control plane.
pub struct SidecarApi(pub Arc<ControlPlane>);

/// What the token interceptor admitted; refusing when it did not run (fail safe).
fn admitted<T>(req: &Request<T>) -> Result<Admitted, Status> {
    req.extensions().get::<Admitted>().cloned().ok_or_else(|| Status::internal("no token check ran"))
}

type PushStream = Pin<Box<dyn Stream<Item = Result<SnapshotPush, Status>> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<ReportReply, Status>> + Send>>;

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
        check_names(&hello.service, &hello.instance).map_err(status)?;
        admitted.check(&hello.service)?;
        let hello = Hello {
            service: hello.service,
            instance: hello.instance,
            peer,
            version: hello.version,
            credentials_epoch: hello.credentials_epoch,
            credentials_revision: hello.credentials_revision,
        };
        let mut session = self.0.hello(hello).await.map_err(status)?;
        let mut snapshots = session.snapshots();
        let mut candidates = session.candidates();
        let mut credentials = session.credentials();
        let (tx, rx) = mpsc::channel(4);
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
                        let mut closed = false;
                        for c in session.credentials_to_send(&current) {
                            let push = SnapshotPush { snapshot: None, credentials: Some(c.bytes()), shadow: None };
                            if tx.send(Ok(push)).await.is_err() {
                                closed = true;
                                break;
                            }
                        }
                        if closed {
                            break;
                        }
                    }
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        snapshots.mark_unchanged();
                        if !send_policy(&mut session, &snapshots, &candidates, &tx).await {
                            break;
                        }
                    }
                    changed = candidates.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        candidates.mark_unchanged();
                        if !send_policy(&mut session, &snapshots, &candidates, &tx).await {
                            break;
                        }
                    }
                    msg = inbound.message() => {
                        let event = match msg {
                            Ok(Some(SidecarMessage { kind: Some(Kind::Ack(a)) })) => Event::Ack(a.version),
                            Ok(Some(SidecarMessage { kind: Some(Kind::CredentialsAck(a)) })) => Event::CredentialsAck(a.revision),
                            Ok(Some(SidecarMessage { kind: Some(Kind::Nack(n)) })) => Event::Nack(n.version, n.error),
                            Ok(Some(SidecarMessage { kind: Some(Kind::ShadowAck(a)) })) => Event::ShadowAck(a.version, a.error),
                            Ok(Some(_)) => Event::Seen,
                            Ok(None) | Err(_) => break,
                        };
                        session.said(event);
                    }
                }
            }
            // Dropping the session marks the sidecar disconnected.
            drop(session);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report(&self, req: Request<Streaming<ReportBatch>>) -> Result<Response<ReplyStream>, Status> {
        let admitted = admitted(&req)?;
        let mut inbound = req.into_inner();
        let first = inbound.message().await?.ok_or_else(|| Status::invalid_argument("no first batch"))?;
        check_names(&first.service, &first.instance).map_err(status)?;
        admitted.check(&first.service)?;
        let reporter = self.0.open_report(&first.service, &first.instance).await.map_err(status)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut batch = Some(first);
            while let Some(b) = batch.take() {
                let (reply, to_store) = match reporter.record(convert::report(b)) {
                    Ok(recorded) => recorded,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        break;
                    }
                };
                // The quota reply first: storing deny records and samples waits on a disk write.
                if tx.send(Ok(convert::report_reply(reply))).await.is_err() {
                    break;
                }
                reporter.store(to_store).await;
                batch = match inbound.message().await {
                    Ok(Some(next)) => Some(next),
                    Ok(None) | Err(_) => None,
                };
            }
            // Dropping the reporter takes its demand off the quota board.
            drop(reporter);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends the sidecar what it should now serve and shadow, if that changed; false when
/// the stream is gone.
async fn send_policy(
    session: &mut Session,
    snapshots: &watch::Receiver<Option<Arc<Encoded<pb::Snapshot>>>>,
    candidates: &watch::Receiver<Option<Arc<Candidate>>>,
    tx: &mpsc::Sender<Result<SnapshotPush, Status>>,
) -> bool {
    let (live, candidate) = (snapshots.borrow().clone(), candidates.borrow().clone());
    match session.policy_to_send(live.as_ref(), candidate.as_ref()) {
        Some(p) => {
            tx.send(Ok(SnapshotPush { snapshot: p.snapshot, credentials: None, shadow: p.shadow })).await.is_ok()
        }
        None => true,
    }
}

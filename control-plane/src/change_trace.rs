//! Traces of policy changes: `apply` → store → snapshot build → push → every sidecar's
//! ACK. Each published version gets a `rollout` span that ends when every sidecar of the
//! service connected at publish time has answered (an event per ACK or NACK, an error
//! status on any NACK), or after `TIMEOUT`. With no OTLP endpoint set, nothing is traced.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{Span, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use warden_telemetry::Traces;

use crate::registry::Event;

/// How long a rollout waits for ACKs before its span ends anyway.
const TIMEOUT: Duration = Duration::from_secs(30);

struct Open {
    cx: Context,
    pending: HashSet<String>,
    nacks: u32,
}

/// Rollouts waiting for ACKs, by service and version.
#[derive(Default)]
pub struct ChangeTraces {
    traces: Option<Traces>,
    open: Mutex<HashMap<(String, u64), Open>>,
}

impl ChangeTraces {
    pub fn new(traces: Option<Traces>) -> Arc<ChangeTraces> {
        Arc::new(ChangeTraces { traces, open: Mutex::new(HashMap::new()) })
    }

    /// Starts an `apply` span (or a `rollback` one); None without tracing.
    pub fn start_apply(&self, name: &'static str, attributes: Vec<KeyValue>) -> Option<Context> {
        let t = self.traces.as_ref()?;
        let span = t.tracer().span_builder(name).with_attributes(attributes).start(t.tracer());
        Some(Context::current_with_span(span))
    }

    /// A child span of `parent` that ends when `f` returns.
    pub async fn child<T, F: Future<Output = T>>(&self, parent: Option<&Context>, name: &'static str, f: F) -> T {
        let span = match (self.traces.as_ref(), parent) {
            (Some(t), Some(p)) => Some(t.tracer().start_with_context(name, p)),
            _ => None,
        };
        let out = f.await;
        if let Some(mut s) = span {
            s.end();
        }
        out
    }

    /// A step that is over, as a child span of `parent` carrying its outcome (a preview's
    /// result for one service).
    pub fn finished(&self, parent: Option<&Context>, name: &'static str, attributes: Vec<KeyValue>) {
        if let (Some(t), Some(p)) = (self.traces.as_ref(), parent) {
            let mut span = t.tracer().start_with_context(name, p);
            span.set_attributes(attributes);
            span.end();
        }
    }

    /// A version was published to `sidecars` (connected now): its rollout span starts.
    pub fn published(self: &Arc<Self>, parent: Option<&Context>, service: &str, version: u64, sidecars: Vec<String>) {
        let (Some(t), Some(p)) = (self.traces.as_ref(), parent) else { return };
        let mut span = t.tracer().start_with_context("rollout", p);
        span.set_attributes([
            KeyValue::new("warden.service", service.to_owned()),
            KeyValue::new("warden.version", i64::try_from(version).unwrap_or(i64::MAX)),
            KeyValue::new("warden.sidecars", i64::try_from(sidecars.len()).unwrap_or(i64::MAX)),
        ]);
        let cx = p.with_span(span);
        if sidecars.is_empty() {
            cx.span().end();
            return;
        }
        let key = (service.to_owned(), version);
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), Open { cx, pending: sidecars.into_iter().collect(), nacks: 0 });
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TIMEOUT).await;
            if let Some(o) = me.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&key) {
                let span = o.cx.span();
                span.set_attribute(KeyValue::new("warden.timed_out", true));
                span.set_attribute(KeyValue::new("warden.pending", o.pending.len() as i64));
                span.end();
            }
        });
    }

    /// A sidecar answered.
    pub fn observe(&self, service: &str, instance: &str, event: &Event) {
        // With tracing off no rollout is open: nothing to look up.
        if self.traces.is_none() {
            return;
        }
        let (version, nack) = match event {
            Event::Ack(v) => (*v, None),
            Event::Nack(v, e) => (*v, Some(e.clone())),
            _ => return,
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (service.to_owned(), version);
        let Some(o) = open.get_mut(&key) else { return };
        let span = o.cx.span();
        match nack {
            None => span.add_event("ack", vec![KeyValue::new("warden.instance", instance.to_owned())]),
            Some(e) => {
                o.nacks += 1;
                span.add_event(
                    "nack",
                    vec![
                        KeyValue::new("warden.instance", instance.to_owned()),
                        KeyValue::new("warden.error", e.clone()),
                    ],
                );
                span.set_status(Status::error(format!("{instance}: {e}")));
            }
        }
        o.pending.remove(instance);
        if o.pending.is_empty() {
            span.set_attribute(KeyValue::new("warden.nacks", i64::from(o.nacks)));
            span.end();
            open.remove(&key);
        }
    }
}

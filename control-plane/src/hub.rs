//! The current compiled snapshot and credentials of every service, each built once per
//! change and shared by every subscribed sidecar stream through `watch` channels: a new
//! version wakes each subscriber, which sends the same bytes (each message is encoded once,
//! `warden_proto::Encoded`). For credentials
//! the hub also keeps the last few changes, so a sidecar that is a little behind (or
//! reconnects) gets only what it misses instead of every key again. A service with a
//! running rollout also has a candidate: decided in shadow by every sidecar, or served by
//! the canary sidecars; each sidecar's stream works out which of the two it is sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use warden_policy::yaml::{PolicyErrors, build, parse_service};
use warden_proto::Encoded;
use warden_proto::v1 as pb;

use crate::store::PolicyVersion;

type Slot = watch::Sender<Option<Arc<Encoded<pb::Snapshot>>>>;
type CredentialsSlot = watch::Sender<Option<Arc<CredentialsState>>>;
type CandidateSlot = watch::Sender<Option<Arc<Candidate>>>;

/// A running rollout's candidate, as sidecars are sent it.
#[derive(Debug)]
pub struct Candidate {
    pub snapshot: Arc<Encoded<pb::Snapshot>>,
    /// The sidecars that serve it as their policy (a canary); None: every sidecar decides
    /// it in shadow beside the live one.
    pub canary: Option<HashSet<String>>,
}

impl Candidate {
    /// What `instance` is sent: (its policy, if the candidate; the candidate to shadow).
    pub fn for_instance(&self, instance: &str) -> (bool, bool) {
        match &self.canary {
            Some(set) => (set.contains(instance), false),
            None => (false, true),
        }
    }
}

/// How many recent credential changes are kept for sidecars that are behind.
const KEPT_CHANGES: usize = 64;

/// A service's credentials: the whole set and the changes that led to it.
#[derive(Debug, Default)]
pub struct CredentialsState {
    /// Every key and the current secrets (`base_revision` 0).
    pub full: Arc<Encoded<pb::Credentials>>,
    /// Consecutive changes, oldest first, the last one ending at `full.revision`.
    changes: VecDeque<Arc<Encoded<pb::Credentials>>>,
    /// The secrets the policy named when this was built.
    pub secret_names: Vec<String>,
}

impl CredentialsState {
    /// A whole set, with no history.
    pub fn new(full: pb::Credentials, secret_names: Vec<String>) -> Self {
        CredentialsState { full: Arc::new(Encoded::new(full)), changes: VecDeque::new(), secret_names }
    }

    /// This state with `change` applied: keys replaced by id, secrets replaced whole.
    pub fn apply(&self, change: pb::Credentials, secret_names: Vec<String>) -> Self {
        let mut full = pb::Credentials::clone(&self.full);
        let index: HashMap<&str, usize> = full.keys.iter().enumerate().map(|(i, k)| (k.id.as_str(), i)).collect();
        let mut added = Vec::new();
        for k in &change.keys {
            match index.get(k.id.as_str()) {
                Some(&i) => added.push((Some(i), k.clone())),
                None => added.push((None, k.clone())),
            }
        }
        for (slot, k) in added {
            match slot {
                Some(i) => full.keys[i] = k,
                None => full.keys.push(k),
            }
        }
        full.secrets = change.secrets.clone();
        full.revision = change.revision;
        full.epoch = change.epoch;
        let mut changes = self.changes.clone();
        changes.push_back(Arc::new(Encoded::new(change)));
        if changes.len() > KEPT_CHANGES {
            changes.pop_front();
        }
        CredentialsState { full: Arc::new(Encoded::new(full)), changes, secret_names }
    }

    /// What a sidecar holding `revision` of `epoch` needs to be current: the changes after
    /// it when they are all kept, else the whole set; nothing when current. A revision of
    /// another epoch (or 0) is no base for anything.
    pub fn since(&self, epoch: u64, revision: u64) -> Vec<Arc<Encoded<pb::Credentials>>> {
        let usable = (epoch == self.full.epoch && revision != 0).then_some(revision);
        match usable {
            Some(r) if r == self.full.revision => Vec::new(),
            Some(r) => match self.changes.iter().position(|c| c.base_revision == r) {
                Some(i) => self.changes.iter().skip(i).cloned().collect(),
                None => vec![self.full.clone()],
            },
            None => vec![self.full.clone()],
        }
    }
}

/// Snapshots and credentials by service.
#[derive(Default)]
pub struct Hub {
    services: Mutex<HashMap<String, Slot>>,
    credentials: Mutex<HashMap<String, CredentialsSlot>>,
    candidates: Mutex<HashMap<String, CandidateSlot>>,
}

impl Hub {
    /// Makes `snapshot` its service's current one and wakes every subscriber, unless a
    /// newer version is already published (two applies racing past the store).
    pub fn publish(&self, snapshot: pb::Snapshot) {
        let service = snapshot.service.clone();
        let snapshot = Arc::new(Encoded::new(snapshot));
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.entry(service).or_insert_with(|| watch::channel(None).0).send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.version >= snapshot.version) {
                return false;
            }
            *current = Some(snapshot);
            true
        });
    }

    /// Makes `candidate` the service's rollout candidate (None: no rollout is running) and
    /// wakes every subscriber, unless it is the one already published.
    pub fn publish_candidate(&self, service: &str, candidate: Option<Candidate>) {
        let candidate = candidate.map(Arc::new);
        let mut all = self.candidates.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).send_if_modified(|current| {
            let same = match (current.as_ref(), candidate.as_ref()) {
                (None, None) => true,
                (Some(a), Some(b)) => a.snapshot.version == b.snapshot.version && a.canary == b.canary,
                _ => false,
            };
            if !same {
                *current = candidate;
            }
            !same
        });
    }

    /// The service's rollout candidate, if one is running.
    pub fn candidate(&self, service: &str) -> Option<Arc<Candidate>> {
        let all = self.candidates.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(service).and_then(|s| s.borrow().clone())
    }

    /// A receiver that sees the service's rollout candidate and every change of it.
    pub fn subscribe_candidate(&self, service: &str) -> watch::Receiver<Option<Arc<Candidate>>> {
        let mut all = self.candidates.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// A receiver that sees the service's current snapshot and every later one.
    pub fn subscribe(&self, service: &str) -> watch::Receiver<Option<Arc<Encoded<pb::Snapshot>>>> {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Makes `state` its service's current credentials, unless a later revision is
    /// already published.
    pub fn publish_credentials(&self, service: &str, state: CredentialsState) {
        let state = Arc::new(state);
        let mut all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.full.revision > state.full.revision) {
                return false;
            }
            *current = Some(state);
            true
        });
    }

    /// The service's current credentials, if any are published.
    pub fn credentials(&self, service: &str) -> Option<Arc<CredentialsState>> {
        let all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(service).and_then(|s| s.borrow().clone())
    }

    /// A receiver that sees the service's current credentials and every later one.
    pub fn subscribe_credentials(&self, service: &str) -> watch::Receiver<Option<Arc<CredentialsState>>> {
        let mut all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// The credentials revision subscribers of `service` are being sent, 0 for none.
    pub fn current_credentials(&self, service: &str) -> u64 {
        self.credentials(service).map_or(0, |c| c.full.revision)
    }

    /// The secrets the service's current policy names.
    pub fn secret_names(&self, service: &str) -> Vec<String> {
        self.snapshot(service).map(|s| secret_names(&s)).unwrap_or_default()
    }

    /// Every service with a published snapshot or credentials.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.services.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        out.extend(self.credentials.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// The service's current snapshot.
    pub fn snapshot(&self, service: &str) -> Option<Arc<Encoded<pb::Snapshot>>> {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.get(service).and_then(|s| s.borrow().clone())
    }

    /// The version subscribers of `service` are being sent, 0 for none.
    pub fn current_version(&self, service: &str) -> u64 {
        self.snapshot(service).map_or(0, |s| s.version)
    }
}

/// The secrets a snapshot's hmac providers name, sorted.
pub fn secret_names(snapshot: &pb::Snapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot
        .auth
        .iter()
        .filter_map(|p| match &p.kind {
            Some(pb::auth_provider::Kind::Hmac(h)) => Some(h.secret.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The global limits a snapshot has.
pub fn global_limits(snapshot: &pb::Snapshot) -> Vec<String> {
    snapshot.limits.iter().filter(|l| l.global).map(|l| l.name.clone()).collect()
}

/// Builds the snapshot for a stored version, re-validating its source with this build's
/// policy model.
pub fn snapshot_of(v: &PolicyVersion) -> Result<pb::Snapshot, PolicyErrors> {
    let parsed = parse_service(&format!("{}@v{}", v.service, v.version), &v.source_yaml, Some(&v.service))?;
    Ok(build(&parsed.policy, &v.source_yaml, v.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, revoked: i64) -> pb::ApiKey {
        pb::ApiKey { id: id.into(), revoked_unix_ms: revoked, ..Default::default() }
    }

    const E: u64 = 77;

    fn change(base: u64, revision: u64, keys: Vec<pb::ApiKey>) -> pb::Credentials {
        pb::Credentials { service: "s".into(), revision, keys, secrets: vec![], base_revision: base, epoch: E }
    }

    #[test]
    fn a_sidecar_gets_only_the_changes_it_misses_or_else_everything() {
        let full = pb::Credentials {
            service: "s".into(),
            revision: 5,
            keys: vec![key("a", 0)],
            epoch: E,
            ..Default::default()
        };
        let s0 = CredentialsState::new(full, vec![]);
        let s1 = s0.apply(change(5, 6, vec![key("b", 0)]), vec![]);
        let s2 = s1.apply(change(6, 9, vec![key("a", 123)]), vec![]);
        assert_eq!(s2.full.revision, 9);
        assert_eq!(
            s2.full.keys.iter().map(|k| (k.id.as_str(), k.revoked_unix_ms)).collect::<Vec<_>>(),
            [("a", 123), ("b", 0)]
        );

        let revs =
            |v: Vec<Arc<Encoded<pb::Credentials>>>| v.iter().map(|c| (c.base_revision, c.revision)).collect::<Vec<_>>();
        assert_eq!(revs(s2.since(E, 9)), []);
        assert_eq!(revs(s2.since(E, 6)), [(6, 9)]);
        assert_eq!(revs(s2.since(E, 5)), [(5, 6), (6, 9)]);
        assert_eq!(revs(s2.since(E, 4)), [(0, 9)], "too far behind: the whole set");
        assert_eq!(revs(s2.since(E, 0)), [(0, 9)]);
        assert_eq!(revs(s2.since(E, 7)), [(0, 9)], "a revision never published here");
        assert_eq!(revs(s2.since(E + 1, 9)), [(0, 9)], "revision 9 of another store is not this one");
    }
}

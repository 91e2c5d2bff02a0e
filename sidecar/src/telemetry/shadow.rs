//! Where a rollout's candidate in shadow decided otherwise, tallied for the report stream:
//! exact counts by candidate version, kind, route, rule, reason and client, with the first
//! few request ids of each, and a cap on the deny records the differences also make (a
//! candidate that refuses half the traffic must not flood the review queue's store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use warden_proto::v1 as pb;

use crate::telemetry::outcome::ShadowDecision;

/// Distinct groups kept between two reports; more are counted as dropped.
const MAX_GROUPS: usize = 1_000;
/// Request ids kept per group.
const EXAMPLES: usize = 3;
/// Deny records of shadow refusals a sidecar sends per second at most.
pub const RECORDS_PER_SECOND: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    version: u64,
    denied: bool,
    route: Option<Arc<str>>,
    rule: String,
    code: &'static str,
    client: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Tally {
    groups: HashMap<Key, (u64, Vec<String>)>,
    dropped: u64,
    /// The second deny records are being counted in, and how many went out in it.
    second: Option<Instant>,
    records: u32,
}

/// The differences since the last report.
#[derive(Debug, Default)]
pub struct ShadowTally(Mutex<Tally>);

impl ShadowTally {
    /// Counts one difference (the live side's client); true when it is a `shadow_deny`
    /// whose deny record may be sent (within `RECORDS_PER_SECOND`).
    pub fn add(&self, d: &ShadowDecision, client: Option<&Arc<str>>, request_id: &str) -> bool {
        let key = Key {
            version: d.version,
            denied: d.denied,
            route: d.route.clone(),
            rule: d.rule.clone(),
            code: d.code,
            client: client.cloned(),
        };
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let full = t.groups.len() >= MAX_GROUPS;
        match t.groups.get_mut(&key) {
            Some((count, examples)) => {
                *count += 1;
                if examples.len() < EXAMPLES {
                    examples.push(request_id.to_owned());
                }
            }
            None if full => t.dropped += 1,
            None => {
                t.groups.insert(key, (1, vec![request_id.to_owned()]));
            }
        }
        if !d.denied {
            return false;
        }
        let now = Instant::now();
        if t.second.is_none_or(|s| now.duration_since(s).as_secs() >= 1) {
            t.second = Some(now);
            t.records = 0;
        }
        t.records += 1;
        t.records <= RECORDS_PER_SECOND
    }

    /// The counts since the last call, and how many differences found no group.
    pub fn take(&self) -> (Vec<pb::ShadowCount>, u64) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut t.dropped);
        let counts = t
            .groups
            .drain()
            .map(|(k, (count, example_request_ids))| pb::ShadowCount {
                version: k.version,
                kind: if k.denied { "shadow_deny" } else { "shadow_allow" }.into(),
                route: k.route.as_deref().unwrap_or_default().to_owned(),
                rule: k.rule,
                code: k.code.to_owned(),
                client_id: k.client.as_deref().unwrap_or_default().to_owned(),
                count,
                example_request_ids,
            })
            .collect();
        (counts, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(rule: &str) -> ShadowDecision {
        ShadowDecision {
            denied: true,
            route: Some("r".into()),
            rule: rule.into(),
            code: "forbidden",
            status: 403,
            version: 2,
        }
    }

    #[test]
    fn counts_are_exact_and_records_are_capped_per_second() {
        let tally = ShadowTally::default();
        let allow = ShadowDecision { denied: false, ..deny("a") };
        assert!(!tally.add(&allow, None, "id-allow"), "a shadow_allow makes no record, and takes none of the budget");
        let sent = (0..25).filter(|i| tally.add(&deny("a"), None, &format!("id-{i}"))).count();
        assert_eq!(sent, RECORDS_PER_SECOND as usize, "the rest of the second sends no record");
        tally.add(&deny("b"), Some(&"acme".into()), "id-b");
        let (mut counts, dropped) = tally.take();
        counts.sort_by(|x, y| (&x.rule, &x.kind).cmp(&(&y.rule, &y.kind)));
        assert_eq!(dropped, 0);
        let summary: Vec<_> = counts.iter().map(|c| (c.rule.as_str(), c.kind.as_str(), c.count)).collect();
        assert_eq!(summary, [("a", "shadow_allow", 1), ("a", "shadow_deny", 25), ("b", "shadow_deny", 1)]);
        assert_eq!(counts[1].example_request_ids, ["id-0", "id-1", "id-2"]);
        assert_eq!(counts[2].client_id, "acme");
        assert!(tally.take().0.is_empty(), "taken once");
    }
}

//! The review queue: refused requests as the sidecars reported them, newest first or
//! counted by service, route, rule, reason and client, each group with its reviewer's
//! mark (expected, or a false positive) and counts over time; and the decision samples
//! beside them, the traffic `apply --preview` replays.

use std::collections::HashMap;

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{
    DenialBucket, DenialFilter, DenialGroup, DenialMark, Mark, SampleFilter, StoredDenial, StoredSample, now_unix_ms,
};

/// Rows when the caller asks for none in particular, and the most ever returned.
const DEFAULT_ROWS: u32 = 50;
const MAX_ROWS: u32 = 10_000;
/// The longest note and owner a mark keeps.
const MAX_NOTE: usize = 500;
const MAX_OWNER: usize = 100;
/// Time-bucket rows read at most (a day of hours for 400 groups).
const MAX_BUCKET_ROWS: u32 = 10_000;
/// Samples listed at most (a preview reads the store itself, more).
const MAX_SAMPLE_ROWS: u32 = 10_000;

fn bounded(mut filter: DenialFilter) -> DenialFilter {
    filter.limit = if filter.limit == 0 { DEFAULT_ROWS } else { filter.limit.min(MAX_ROWS) };
    filter
}

/// A refusal group and what its reviewer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    /// `group.id()`, what a mark is kept under.
    pub id: String,
    pub group: DenialGroup,
    pub mark: Option<DenialMark>,
}

/// A mark to set on a refusal group.
#[derive(Debug, Clone, Default)]
pub struct MarkRequest {
    pub group: String,
    /// "expected" or "false-positive".
    pub mark: String,
    pub note: String,
    pub owner: String,
    /// "unknown" when empty.
    pub author: String,
}

impl ControlPlane {
    /// Refusals matching `filter`, newest first.
    pub async fn denials(&self, filter: DenialFilter) -> Result<Vec<StoredDenial>, OpsError> {
        Ok(self.stored("denials", self.store.denials(bounded(filter))).await?)
    }

    /// Refusals matching `filter`, counted, most first, each with its mark.
    pub async fn denial_groups(&self, filter: DenialFilter) -> Result<Vec<Reviewed>, OpsError> {
        let groups = self.stored("denial_groups", self.store.denial_groups(bounded(filter))).await?;
        let mut marks: HashMap<String, DenialMark> = self
            .stored("denial_marks", self.store.denial_marks(None))
            .await?
            .into_iter()
            .map(|m| (m.group.clone(), m))
            .collect();
        Ok(groups
            .into_iter()
            .map(|group| {
                let id = group.id();
                let mark = marks.remove(&id);
                Reviewed { id, group, mark }
            })
            .collect())
    }

    /// Refusals matching `filter`, counted by group and `bucket_ms`-long time bucket.
    pub async fn denial_buckets(&self, filter: DenialFilter, bucket_ms: i64) -> Result<Vec<DenialBucket>, OpsError> {
        let filter = DenialFilter { limit: MAX_BUCKET_ROWS, ..filter };
        Ok(self.stored("denial_buckets", self.store.denial_buckets(filter, bucket_ms)).await?)
    }

    /// Marks the refusal group `id` (as `denial_groups` names it): its earlier mark goes.
    /// The group must have a refusal in the deny log, so a typo is not kept as a mark.
    pub async fn mark_denials(&self, m: MarkRequest) -> Result<DenialMark, OpsError> {
        let mark = Mark::parse(&m.mark)
            .ok_or_else(|| OpsError::Invalid(format!("'{}' is not a mark: expected or false-positive", m.mark)))?;
        for (field, value, max) in [("note", &m.note, MAX_NOTE), ("owner", &m.owner, MAX_OWNER)] {
            if value.chars().count() > max || value.chars().any(warden_policy::text::is_control) {
                return Err(OpsError::Invalid(format!("the {field} must be at most {max} characters, none a control")));
            }
        }
        let group = self.find_group(&m.group).await?;
        let author = if m.author.trim().is_empty() { "unknown".to_owned() } else { m.author };
        let mark = DenialMark {
            group: m.group,
            service: group.service,
            route: group.route,
            rule: group.rule,
            code: group.code,
            client_id: group.client_id,
            mark,
            note: m.note,
            owner: m.owner,
            author,
            unix_ms: now_unix_ms(),
        };
        self.stored("set_denial_mark", self.store.set_denial_mark(mark.clone())).await?;
        tracing::info!(group = %mark.group, service = %mark.service, mark = mark.mark.as_str(), author = %mark.author, "refusal group marked");
        Ok(mark)
    }

    /// Decision samples matching `filter`, newest first.
    pub async fn samples(&self, mut filter: SampleFilter) -> Result<Vec<StoredSample>, OpsError> {
        filter.limit = if filter.limit == 0 { DEFAULT_ROWS } else { filter.limit.min(MAX_SAMPLE_ROWS) };
        Ok(self.stored("samples", self.store.samples(filter)).await?)
    }
}

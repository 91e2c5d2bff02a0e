//! The review queue: refused requests as the sidecars reported them, newest first or
//! counted by service, route, rule, reason and client; and the decision samples beside
//! them, the traffic `apply --preview` replays.

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{DenialFilter, DenialGroup, SampleFilter, StoredDenial, StoredSample};

/// Rows when the caller asks for none in particular, and the most ever returned.
const DEFAULT_ROWS: u32 = 50;
const MAX_ROWS: u32 = 10_000;
/// Samples listed at most (a preview reads the store itself, more).
const MAX_SAMPLE_ROWS: u32 = 10_000;

fn bounded(mut filter: DenialFilter) -> DenialFilter {
    filter.limit = if filter.limit == 0 { DEFAULT_ROWS } else { filter.limit.min(MAX_ROWS) };
    filter
}

impl ControlPlane {
    /// Refusals matching `filter`, newest first.
    pub async fn denials(&self, filter: DenialFilter) -> Result<Vec<StoredDenial>, OpsError> {
        Ok(self.stored("denials", self.store.denials(bounded(filter))).await?)
    }

    /// Refusals matching `filter`, counted, most first.
    pub async fn denial_groups(&self, filter: DenialFilter) -> Result<Vec<DenialGroup>, OpsError> {
        Ok(self.stored("denial_groups", self.store.denial_groups(bounded(filter))).await?)
    }

    /// Decision samples matching `filter`, newest first.
    pub async fn samples(&self, mut filter: SampleFilter) -> Result<Vec<StoredSample>, OpsError> {
        filter.limit = if filter.limit == 0 { DEFAULT_ROWS } else { filter.limit.min(MAX_SAMPLE_ROWS) };
        Ok(self.stored("samples", self.store.samples(filter)).await?)
    }
}

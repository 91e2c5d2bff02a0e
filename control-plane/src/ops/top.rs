//! Live traffic for `wardenctl top`: each sidecar's latest per-route window, as its report
//! stream delivered it (`sidecars.rs` feeds the view).

use crate::ops::control_plane::ControlPlane;
use crate::traffic::TopRow;

impl ControlPlane {
    /// Fresh per-route windows, of one service or ("") all, by service, route and instance.
    pub fn top(&self, service: &str) -> Vec<TopRow> {
        self.traffic.rows(service)
    }
}

//! The canary's comparison and its automatic abort. The candidate's sidecars and the
//! baseline (the service's other sidecars, on the live version) are compared over a
//! sliding `WINDOW` of the traffic windows sidecars report every 2 s: refusal rate (by
//! reason), 5xx rate and p99 latency. The evaluator (`leader.rs`: one replica at a time)
//! checks every running canary each `TICK`; once each side has `MIN_REQUESTS` in the
//! window and an `--abort-if` condition holds, it aborts the rollout and records why.
//! With several replicas each one shares its own sidecars' sums through the store, and the
//! evaluator adds them up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::ControlPlane;
use crate::store::{CanaryWindow, Rollout, RolloutMode, RolloutState};

/// What a canary is judged on.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Requests each side needs in the window before any condition is judged.
pub const MIN_REQUESTS: u64 = 50;
/// How often the evaluator judges (and each replica shares its sums).
const TICK: Duration = Duration::from_secs(1);
/// Another replica's sums count while this fresh.
const FRESH_MS: i64 = 5_000;

/// An `--abort-if` condition: the canary against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbortIf {
    /// `refused>+2%`: the refused share, in percentage points above the baseline's.
    Refused(f64),
    /// `5xx>+1%`: the 5xx share, in percentage points above the baseline's.
    ServerErrors(f64),
    /// `p99>+50ms`: p99 latency this many ms above the baseline's.
    P99Above(f64),
    /// `p99>1.5x`: p99 latency this many times the baseline's.
    P99Times(f64),
}

impl AbortIf {
    /// Reads `refused>+2%`, `5xx>+1%`, `p99>+50ms` or `p99>1.5x`.
    pub fn parse(s: &str) -> Result<AbortIf, String> {
        let bad = || {
            format!("--abort-if '{s}': expected refused>+N%, 5xx>+N%, p99>+Nms or p99>Nx (for example 'refused>+2%')")
        };
        let (metric, rest) = s.trim().split_once('>').ok_or_else(bad)?;
        let number = |t: &str| t.trim().parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0).ok_or_else(bad);
        match (metric.trim(), rest.trim()) {
            ("refused", r) => Ok(AbortIf::Refused(number(points(r).ok_or_else(bad)?)?)),
            ("5xx", r) => Ok(AbortIf::ServerErrors(number(points(r).ok_or_else(bad)?)?)),
            ("p99", r) if r.starts_with('+') && r.ends_with("ms") => Ok(AbortIf::P99Above(number(&r[1..r.len() - 2])?)),
            ("p99", r) if r.ends_with('x') => Ok(AbortIf::P99Times(number(&r[..r.len() - 1])?)),
            _ => Err(bad()),
        }
    }

    /// Why it holds, if it does.
    pub fn holds(&self, canary: &Side, baseline: &Side) -> Option<String> {
        let (c, b) = (canary, baseline);
        let held = match *self {
            AbortIf::Refused(points) => c.refused_pct() - b.refused_pct() > points,
            AbortIf::ServerErrors(points) => c.server_error_pct() - b.server_error_pct() > points,
            AbortIf::P99Above(ms) => c.p99_ms() - b.p99_ms() > ms,
            AbortIf::P99Times(x) => c.p99_ms() > x * b.p99_ms(),
        };
        let measured = match self {
            AbortIf::Refused(_) => format!("refused {:.1}% vs {:.1}%", c.refused_pct(), b.refused_pct()),
            AbortIf::ServerErrors(_) => format!("5xx {:.1}% vs {:.1}%", c.server_error_pct(), b.server_error_pct()),
            AbortIf::P99Above(_) | AbortIf::P99Times(_) => format!("p99 {:.1} ms vs {:.1} ms", c.p99_ms(), b.p99_ms()),
        };
        held.then(|| {
            format!(
                "{self}: {measured} (canary vs baseline, {} vs {} requests over the last {} s)",
                c.requests,
                b.requests,
                WINDOW.as_secs()
            )
        })
    }
}

/// "+2%" → "2".
fn points(s: &str) -> Option<&str> {
    s.strip_prefix('+')?.strip_suffix('%')
}

impl fmt::Display for AbortIf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortIf::Refused(p) => write!(f, "refused>+{p}%"),
            AbortIf::ServerErrors(p) => write!(f, "5xx>+{p}%"),
            AbortIf::P99Above(ms) => write!(f, "p99>+{ms}ms"),
            AbortIf::P99Times(x) => write!(f, "p99>{x}x"),
        }
    }
}

/// One side of a canary over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    /// The sidecars that reported in the window.
    pub instances: BTreeSet<String>,
    pub requests: u64,
    pub refused: u64,
    pub refused_by_code: BTreeMap<String, u64>,
    pub server_errors: u64,
    /// Bucket i: requests up to 100 µs × 2^i.
    pub latency_buckets: Vec<u64>,
}

impl Side {
    fn add(&mut self, w: &CanaryWindow) {
        self.instances.extend(w.instances.iter().cloned());
        self.requests += w.requests;
        self.refused += w.refused;
        for (code, n) in &w.refused_by_code {
            *self.refused_by_code.entry(code.clone()).or_default() += n;
        }
        self.server_errors += w.server_errors;
        if self.latency_buckets.len() < w.latency_buckets.len() {
            self.latency_buckets.resize(w.latency_buckets.len(), 0);
        }
        self.latency_buckets.iter_mut().zip(&w.latency_buckets).for_each(|(a, b)| *a += b);
    }

    fn window(&self) -> CanaryWindow {
        CanaryWindow {
            instances: self.instances.iter().cloned().collect(),
            requests: self.requests,
            refused: self.refused,
            refused_by_code: self.refused_by_code.iter().map(|(c, n)| (c.clone(), *n)).collect(),
            server_errors: self.server_errors,
            latency_buckets: self.latency_buckets.clone(),
            ..CanaryWindow::default()
        }
    }

    fn pct(&self, n: u64) -> f64 {
        if self.requests == 0 { 0.0 } else { 100.0 * n as f64 / self.requests as f64 }
    }

    pub fn refused_pct(&self) -> f64 {
        self.pct(self.refused)
    }

    pub fn server_error_pct(&self) -> f64 {
        self.pct(self.server_errors)
    }

    /// The 99th percentile, as the upper bound of its bucket (ms); 0 with no requests.
    pub fn p99_ms(&self) -> f64 {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = total - total / 100;
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return 0.1 * f64::from(1u32 << i.min(31));
            }
        }
        0.0
    }
}

/// `rollout status` of a canary: both sides over the window, and what the evaluator makes
/// of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryReport {
    pub canary: Side,
    pub baseline: Side,
}

impl ControlPlane {
    /// Judges every running canary each `TICK` on the evaluator, and (several replicas)
    /// shares this replica's sums with the others, until the control plane is dropped.
    pub(super) fn judge_canaries(self: &Arc<Self>) {
        self.every(TICK, |cp| async move {
            let Ok(rollouts) = cp.stored("rollouts", cp.store.rollouts(None)).await else { return };
            let canaries: Vec<Rollout> = rollouts
                .into_iter()
                .filter(|r| r.state == RolloutState::Canary && r.mode == RolloutMode::Canary)
                .collect();
            if canaries.is_empty() {
                return;
            }
            let mine: Vec<CanaryWindow> = canaries.iter().flat_map(|r| cp.local_sides(r)).collect();
            // Logged and counted by `stored`: the next tick shares again.
            let _ = cp.stored("share_canary", cp.store.share_canary(cp.registry.replica(), mine)).await;
            if !cp.is_evaluator() {
                return;
            }
            let others = cp.other_replicas_sides().await;
            for r in canaries.iter().filter(|r| !r.abort_if.is_empty()) {
                let report = cp.sides(r, &others);
                if report.canary.requests < MIN_REQUESTS || report.baseline.requests < MIN_REQUESTS {
                    continue;
                }
                let why = r
                    .abort_if
                    .iter()
                    .filter_map(|c| AbortIf::parse(c).ok())
                    .find_map(|c| c.holds(&report.canary, &report.baseline));
                if let Some(why) = why {
                    let reason = format!("aborted automatically: {why}");
                    if let Err(e) =
                        cp.end_running(&r.service, r.version, RolloutState::Aborted, "evaluator", &reason).await
                    {
                        tracing::warn!(service = %r.service, error = %e, "could not abort a canary");
                    }
                }
            }
        });
    }

    /// `rollout status` of a canary: this replica's sidecars and the others' shared sums.
    pub(super) async fn compare_canary(&self, r: &Rollout) -> CanaryReport {
        let others = self.other_replicas_sides().await;
        self.sides(r, &others)
    }

    /// The sums the other replicas shared lately (none when the store is down: this
    /// replica's own sidecars still count).
    async fn other_replicas_sides(&self) -> Vec<CanaryWindow> {
        let shared = self.stored("canary_windows", self.store.canary_windows(FRESH_MS)).await.unwrap_or_default();
        shared.into_iter().filter(|w| w.replica != self.registry.replica()).collect()
    }

    /// Both sides: this replica's sidecars, plus what the other replicas shared.
    fn sides(&self, r: &Rollout, others: &[CanaryWindow]) -> CanaryReport {
        let mut report = CanaryReport::default();
        for w in
            self.local_sides(r).iter().chain(others.iter().filter(|w| w.service == r.service && w.version == r.version))
        {
            match w.canary {
                true => report.canary.add(w),
                false => report.baseline.add(w),
            }
        }
        report
    }

    /// This replica's sums for `r`: its canary sidecars on the candidate, and the others on
    /// the live version, over the window.
    fn local_sides(&self, r: &Rollout) -> Vec<CanaryWindow> {
        let since = now_unix_ms() - i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let (mut canary, mut baseline) = (Side::default(), Side::default());
        for (instance, t) in self.traffic.since(&r.service, since) {
            let side = match r.canary_instances.contains(&instance) {
                true if t.policy_version == r.version => &mut canary,
                false if t.policy_version == r.base_version => &mut baseline,
                // A sidecar between versions: counted on neither side.
                _ => continue,
            };
            side.add(&CanaryWindow {
                instances: vec![instance],
                requests: t.requests,
                refused: t.denials,
                refused_by_code: t.refusals.clone(),
                server_errors: t.server_errors,
                latency_buckets: t.latency_buckets.clone(),
                ..CanaryWindow::default()
            });
        }
        [(true, canary), (false, baseline)]
            .into_iter()
            .map(|(is_canary, side)| CanaryWindow {
                service: r.service.clone(),
                version: r.version,
                replica: self.registry.replica().to_owned(),
                canary: is_canary,
                ..side.window()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(requests: u64, refused: u64, errors: u64, slow_bucket: usize) -> Side {
        let mut buckets = vec![0; 18];
        buckets[2] = requests - requests / 50;
        buckets[slow_bucket] += requests / 50;
        Side { requests, refused, server_errors: errors, latency_buckets: buckets, ..Side::default() }
    }

    #[test]
    fn conditions_read_as_written_and_refuse_anything_else() {
        for (text, want) in [
            ("refused>+2%", AbortIf::Refused(2.0)),
            ("5xx>+0.5%", AbortIf::ServerErrors(0.5)),
            ("p99>+50ms", AbortIf::P99Above(50.0)),
            ("p99>1.5x", AbortIf::P99Times(1.5)),
        ] {
            assert_eq!(AbortIf::parse(text), Ok(want));
            assert_eq!(want.to_string(), text);
        }
        for bad in ["refused>2%", "refused>+x%", "p99>50ms", "latency>+1%", "refused>+-1%", "", "5xx>+0%"] {
            assert!(AbortIf::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_condition_holds_only_past_its_margin() {
        let baseline = side(1000, 10, 0, 2);
        let same = side(200, 2, 0, 2);
        let refusing = side(200, 10, 0, 2); // 5% vs 1%
        let failing = side(200, 0, 4, 2); // 2% vs 0%
        let slow = side(200, 0, 0, 12); // 2% of requests at 409.6 ms: p99 there
        for c in [AbortIf::Refused(2.0), AbortIf::ServerErrors(1.0), AbortIf::P99Above(50.0), AbortIf::P99Times(1.5)] {
            assert_eq!(c.holds(&same, &baseline), None, "{c}");
        }
        let why = AbortIf::Refused(2.0).holds(&refusing, &baseline).unwrap();
        assert!(why.starts_with("refused>+2%: refused 5.0% vs 1.0%"), "{why}");
        assert_eq!(AbortIf::Refused(5.0).holds(&refusing, &baseline), None, "4 points is not above 5");
        assert!(AbortIf::ServerErrors(1.0).holds(&failing, &baseline).is_some());
        assert!(AbortIf::P99Above(50.0).holds(&slow, &baseline).is_some());
        assert!(AbortIf::P99Times(1.5).holds(&slow, &baseline).is_some());
        assert!((slow.p99_ms() - 409.6).abs() < 1e-9 && (baseline.p99_ms() - 0.4).abs() < 1e-9);
    }
}

//! What a soak leaves behind: one CSV row per second, the plot of memory and descriptors
//! over the run with the attacks shaded and the control-plane restarts marked, and the
//! arithmetic the summary needs (quantiles, medians of the first and last quarter).

use std::fmt::Write;

use super::attack::Kind;
use crate::plot::{self, Band, Chart, Series, Swatch};

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Row {
    /// Seconds into the run.
    pub t: f64,
    pub sidecar_rss_kib: u64,
    pub sidecar_fds: u64,
    /// Its client connections (`warden_active_connections`) and its open upstream
    /// connections (every endpoint's, `/config`): what most of its descriptors are.
    pub downstream: u64,
    pub upstream: u64,
    /// Zero while the control plane is down.
    pub cp_rss_kib: u64,
    pub cp_fds: u64,
    /// Legitimate requests so far: answered as they should be, failed, and the deliberate
    /// over-limit ones answered 429.
    pub legit_ok: u64,
    pub legit_failed: u64,
    pub over_limit_429: u64,
    /// The slowest legitimate answer in this second, ms.
    pub max_ms: f64,
    pub attack: Option<Kind>,
}

/// An attack's run: from, to (seconds into the run) and kind.
pub type Period = (f64, f64, Kind);

pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "t_s,sidecar_rss_kib,sidecar_fds,downstream_conns,upstream_conns,cp_rss_kib,cp_fds,legit_ok,legit_failed,over_limit_429,legit_max_ms,attack\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:.0},{},{},{},{},{},{},{},{},{},{:.1},{}",
            r.t,
            r.sidecar_rss_kib,
            r.sidecar_fds,
            r.downstream,
            r.upstream,
            r.cp_rss_kib,
            r.cp_fds,
            r.legit_ok,
            r.legit_failed,
            r.over_limit_429,
            r.max_ms,
            r.attack.map_or("", Kind::name)
        );
    }
    out
}

/// Two charts, resident memory and open descriptors of the sidecar and the control plane
/// over the run (minutes), attacks shaded by kind, restarts dashed; a legend under them.
pub fn svg(title: &str, rows: &[Row], periods: &[Period], restarts: &[f64]) -> String {
    let minutes = |t: f64| t / 60.0;
    let x_max = rows.last().map_or(1.0, |r| minutes(r.t));
    // A control plane that is down has no memory to plot, not zero.
    let line = |name: &str, color, f: &dyn Fn(&Row) -> Option<f64>| Series {
        name: name.to_owned(),
        color,
        points: rows.iter().filter_map(|r| f(r).map(|v| (minutes(r.t), v))).collect(),
    };
    let bands = || -> Vec<Band> {
        periods.iter().map(|(a, b, k)| Band { from: minutes(*a), to: minutes(*b), color: k.color() }).collect()
    };
    let marks: Vec<f64> = restarts.iter().map(|t| minutes(*t)).collect();
    let rss = Chart {
        title: "Resident memory (VmRSS)".into(),
        x_label: "minutes into the run".into(),
        y_label: "MiB".into(),
        x_max,
        series: vec![
            line("sidecar", "#d62728", &|r| Some(r.sidecar_rss_kib as f64 / 1024.0)),
            line("control plane", "#1f77b4", &|r| (r.cp_rss_kib > 0).then(|| r.cp_rss_kib as f64 / 1024.0)),
        ],
        bands: bands(),
        marks: marks.clone(),
    };
    let fds = Chart {
        title: "Open descriptors (/proc/PID/fd)".into(),
        x_label: "minutes into the run".into(),
        y_label: "descriptors".into(),
        x_max,
        series: vec![
            line("sidecar", "#d62728", &|r| Some(r.sidecar_fds as f64)),
            line("its client connections", "#ff9896", &|r| Some(r.downstream as f64)),
            line("its upstream connections", "#2ca02c", &|r| Some(r.upstream as f64)),
            line("control plane", "#1f77b4", &|r| (r.cp_rss_kib > 0).then_some(r.cp_fds as f64)),
        ],
        bands: bands(),
        marks,
    };
    let (w, h) = (1000.0, 300.0);
    let mut body = format!(
        "<text x=\"20\" y=\"22\" font-family=\"sans-serif\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        plot::esc(title)
    );
    body += &rss.render(0.0, 30.0, w, h);
    body += &fds.render(0.0, 30.0 + h, w, h);
    let mut legend: Vec<(String, Swatch)> =
        Kind::ALL.iter().map(|k| (k.name().to_owned(), Swatch::Fill(k.color()))).collect();
    legend.push(("control-plane restart".into(), Swatch::Dashed));
    body += &plot::legend(&legend, 70.0, 30.0 + 2.0 * h + 18.0, w - 90.0);
    plot::document(w, 30.0 + 2.0 * h + 50.0, &body)
}

/// The `q` quantile of sorted values, nearest rank; 0 for none.
pub fn quantile<T: Copy + Into<f64>>(sorted: &[T], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1).min(sorted.len() - 1);
    sorted[i].into()
}

/// The median of unsorted values.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// "p50 / p99 / max" of unsorted values, with a unit.
pub fn spread(values: &[f64], unit: &str) -> String {
    if values.is_empty() {
        return "none".into();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} {unit}, p99 {:.0} {unit}, max {:.0} {unit}",
        quantile(&v, 0.5),
        quantile(&v, 0.99),
        v.last().copied().unwrap_or(0.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians() {
        assert_eq!(quantile(&[1u32, 2, 3, 4], 0.5), 2.0);
        assert_eq!(quantile(&[1u32, 2, 3, 4], 0.99), 4.0);
        assert_eq!(quantile::<u32>(&[], 0.5), 0.0);
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn csv_has_a_row_per_second_and_names_the_attack() {
        let row = Row {
            t: 1.0,
            sidecar_rss_kib: 9000,
            sidecar_fds: 20,
            downstream: 3,
            upstream: 4,
            cp_rss_kib: 0,
            cp_fds: 0,
            legit_ok: 200,
            legit_failed: 0,
            over_limit_429: 10,
            max_ms: 3.5,
            attack: Some(Kind::RapidReset),
        };
        let out = csv(&[row]);
        assert_eq!(out.lines().nth(1), Some("1,9000,20,3,4,0,0,200,0,10,3.5,rapid-reset"));
    }
}

//! The rollouts page: each service's latest rollout. A running shadow shows where the
//! candidate decides otherwise than the live version; a running canary shows its sidecars
//! side by side with the baseline's over the judging window, with the conditions that
//! abort it; both have promote and abort buttons for those who may change. An ended one
//! says who ended it and why, an automatic abort's reason included.

use maud::{Markup, html};

use crate::console::page::{Req, ago, csrf, enc, time};
use crate::console::session::Session;
use crate::ops::{CanarySide, ControlPlane, EndRollout, OpsError};
use crate::store::RolloutMode;

pub async fn page(cp: &ControlPlane, session: &Session) -> Result<Markup, OpsError> {
    let status = cp.status(None).await;
    let mut reports = Vec::new();
    for r in status.rollouts.iter().filter(|r| r.state.running()) {
        reports.push(cp.rollout_status(&r.service).await?);
    }
    let ended: Vec<_> = status.rollouts.iter().filter(|r| !r.state.running()).collect();
    Ok(html! {
        h1 { "Rollouts" }
        @if reports.is_empty() {
            p { "No rollout is running. Start one with " code { "wardenctl apply -f FILE --shadow" } " or " code { "--canary 25%" } "." }
        }
        @for report in &reports {
            @if let Some(r) = &report.rollout {
                section.rollout id={ "rollout-" (r.service) } {
                    h2 { (r.service) ": v" (r.version) " in " (r.state.as_str()) " against v" (r.base_version) }
                    p { "Started by " (r.author) ", " (ago(r.started_unix_ms))
                        @if !r.abort_if.is_empty() { "; aborts automatically if " code { (r.abort_if.join(", ")) } } }
                    @if r.mode == RolloutMode::Canary {
                        p { "Canary sidecars (" (r.canary_percent) "%): " (r.canary_instances.join(", ")) }
                    }
                    @if let Some(c) = &report.canary {
                        table.sides {
                            thead { tr { th {} th { "Canary (v" (r.version) ")" } th { "Baseline (v" (r.base_version) ")" } } }
                            tbody {
                                (side_row("Sidecars", &c.canary, &c.baseline, |s| s.instances.len().to_string()))
                                (side_row("Requests (30 s)", &c.canary, &c.baseline, |s| s.requests.to_string()))
                                (side_row("Refused", &c.canary, &c.baseline, |s| format!("{:.1}%", s.refused_pct())))
                                (side_row("5xx", &c.canary, &c.baseline, |s| format!("{:.1}%", s.server_error_pct())))
                                (side_row("p99", &c.canary, &c.baseline, |s| format!("{} ms", s.p99_ms())))
                            }
                        }
                    }
                    @if r.mode == RolloutMode::Shadow {
                        @if report.differences.is_empty() {
                            p.muted { "No difference from the live version so far." }
                        } @else {
                            table.differences {
                                thead { tr { th { "The candidate would" } th { "Count" } th { "Route" } th { "Rule" } th { "Reason" } th { "Client" } th { "Examples" } } }
                                tbody {
                                    @for d in &report.differences {
                                        tr {
                                            td { @if d.denied { "refuse" } @else { "let through" } }
                                            td { (d.count) }
                                            td { (d.route) } td { (d.rule) } td { (d.code) } td { (d.client_id) }
                                            td { @for id in &d.examples { code { (id) } " " } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if session.can_change() {
                        form.end method="post" action={ "/rollouts/" (enc(&r.service)) } {
                            (csrf(session))
                            input type="text" name="reason" maxlength="200" placeholder="why (optional)";
                            " "
                            button.promote type="submit" name="action" value="promote" { "Promote v" (r.version) }
                            " "
                            button.danger.abort type="submit" name="action" value="abort" { "Abort" }
                        }
                    }
                }
            }
        }
        @if !ended.is_empty() {
            h2 { "Ended" }
            table #ended {
                thead { tr { th { "Service" } th { "Candidate" } th { "Mode" } th { "Ended" } th { "How" } th { "By" } th { "Why" } } }
                tbody {
                    @for r in &ended {
                        tr class=(r.state.as_str()) {
                            td { (r.service) } td { "v" (r.version) } td { (r.mode.as_str()) }
                            td title=(time(r.ended_unix_ms)) { (ago(r.ended_unix_ms)) }
                            td { (r.state.as_str()) } td { (r.ended_by) } td.reason { (r.reason) }
                        }
                    }
                }
            }
        }
    })
}

fn side_row(label: &str, canary: &CanarySide, baseline: &CanarySide, f: impl Fn(&CanarySide) -> String) -> Markup {
    html! { tr { th { (label) } td { (f(canary)) } td { (f(baseline)) } } }
}

/// Promotes or aborts; recorded with the session's author.
pub async fn end(cp: &ControlPlane, session: &Session, service: &str, req: &Req) -> Result<(), OpsError> {
    let how = match req.form("action") {
        "promote" => EndRollout::Promote,
        "abort" => EndRollout::Abort,
        other => return Err(OpsError::Invalid(format!("unknown action '{other}': promote or abort"))),
    };
    cp.end_rollout(service, how, &session.author(), req.form("reason").trim()).await.map(drop)
}

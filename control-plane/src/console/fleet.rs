//! The fleet page: every service with its live version and sidecar counts, and every
//! sidecar: its instance, the version it runs, its last NACK and why, when it was last
//! seen and which replica holds its stream. A sidecar behind its service's live version
//! (and not a canary of a running rollout) is version skew and stands out, as do NACKs.

use maud::{Markup, html};

use crate::console::page::{ago, enc, time};
use crate::ops::{ControlPlane, OpsError, SidecarStatus};
use crate::store::{Rollout, RolloutState};

/// Where a sidecar stands against its service's live version.
fn sync(s: &SidecarStatus, rollouts: &[Rollout]) -> &'static str {
    let r = &s.record;
    let canary = rollouts.iter().any(|x| {
        x.service == r.service
            && x.state == RolloutState::Canary
            && x.version == r.acked_version
            && x.canary_instances.contains(&r.instance)
    });
    match () {
        _ if canary => "canary",
        _ if r.acked_version == s.current_version => "in sync",
        _ => "behind",
    }
}

pub async fn page(cp: &ControlPlane) -> Result<Markup, OpsError> {
    let status = cp.status(None).await;
    // The store may be down: the fleet still shows what this replica holds.
    let services = cp.services().await.unwrap_or_default();
    let store = &status.store;
    Ok(html! {
        h1 { "Fleet" }
        @if !store.up {
            p.banner.bad { "The store is DOWN (" (store.name) "): " (store.error) ". Sidecars keep being served; changes fail until it is back." }
        }
        h2 { "Services" }
        @if services.is_empty() {
            p { "No service has a policy yet: " code { "wardenctl apply -f policy.yaml" } }
        } @else {
            table #services {
                thead { tr { th { "Service" } th { "Live version" } th { "By" } th { "When" } th { "Message" } th { "Sidecars" } th { "Rollout" } } }
                tbody {
                    @for p in &services {
                        @let mine: Vec<&SidecarStatus> = status.sidecars.iter().filter(|s| s.record.service == p.service && s.connected).collect();
                        @let skewed = mine.iter().filter(|s| sync(s, &status.rollouts) == "behind").count();
                        @let rollout = status.rollouts.iter().find(|r| r.service == p.service && r.state.running());
                        tr {
                            td { a href={ "/services/" (enc(&p.service)) } { (p.service) } }
                            td { "v" (p.version) }
                            td { (p.author) }
                            td title=(time(p.created_unix_ms)) { (ago(p.created_unix_ms)) }
                            td { (p.message) }
                            td class=@if skewed > 0 { "skew" } {
                                (mine.len()) " connected"
                                @if skewed > 0 { ", " (skewed) " behind" }
                            }
                            td { @if let Some(r) = rollout { a href="/rollouts" { (r.state.as_str()) " v" (r.version) } } @else { "-" } }
                        }
                    }
                }
            }
        }
        h2 { "Sidecars" }
        @if status.sidecars.is_empty() {
            p { "No sidecar has connected." }
        } @else {
            table #sidecars {
                thead { tr { th { "Service" } th { "Instance" } th { "Version" } th { "Last NACK" } th { "Last seen" } th { "Replica" } } }
                tbody {
                    @for s in &status.sidecars {
                        @let r = &s.record;
                        @let state = sync(s, &status.rollouts);
                        @let nacked = r.nacked_version != 0;
                        tr class={ @if !s.connected { "gone " } @if state == "behind" && s.connected { "skew " } @if nacked { "nack" } } {
                            td { (r.service) }
                            td { (r.instance) }
                            td {
                                "v" (r.acked_version) " "
                                span class={ "tag " (state.replace(' ', "-")) } { (state) }
                                @if state != "in sync" { " (live v" (s.current_version) ")" }
                                @if r.shadow_version != 0 { " · shadow v" (r.shadow_version) }
                                @if !r.shadow_error.is_empty() { " · shadow refused: " (r.shadow_error) }
                            }
                            td.nack-error {
                                @if nacked { span.tag.nack { "NACK v" (r.nacked_version) } " " (r.nack_error) } @else { "-" }
                            }
                            td title=(time(r.last_seen_unix_ms)) { (ago(r.last_seen_unix_ms)) }
                            td { @if s.connected { (r.replica) } @else { "disconnected" } }
                        }
                    }
                }
            }
        }
        @if !status.invalid_policies.is_empty() {
            h2 { "Stored policies that no longer validate" }
            ul { @for p in &status.invalid_policies { li { (p.service) " v" (p.version) ": " pre { (p.error) } } } }
        }
    })
}

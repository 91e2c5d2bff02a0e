//! Wire messages to the operations layer's domain types and back: the one place the gRPC
//! server knows both. Empty strings and zeros on the wire mean "none" or "any"; here they
//! become `Option`s where the operations read them so.

use warden_proto::v1 as pb;

use crate::ops::{
    AbortIf, Applied, CanarySide, InvalidPolicy, KeyRequest, QuotaReply, QuotaUsage, Report, Reviewed, RolloutPlan,
    RolloutReport, RouteTraffic, ServicePreview, SidecarStatus, TopRow, sample_to_proto,
};
use crate::store::{
    Denial, DenialFilter, DenialMark, KeyRow, PolicyVersion, Rollout, RolloutMode, Sample, SecretRow, ShadowCount,
    StoredDenial, StoredSample,
};
use warden_policy::preview::{Change, Moved};

/// "" is "none".
pub fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub fn policy_version(v: PolicyVersion) -> pb::PolicyVersion {
    pb::PolicyVersion {
        service: v.service,
        version: v.version,
        author: v.author,
        created_unix_ms: v.created_unix_ms,
        message: v.message,
        content_hash: v.content_hash,
        source_yaml: v.source_yaml,
        rollout_state: String::new(),
    }
}

/// `--shadow` / `--canary N% --abort-if ...` as the operations take them.
pub fn rollout_plan(p: pb::RolloutPlan) -> Result<RolloutPlan, String> {
    let mode = RolloutMode::parse(&p.mode).ok_or_else(|| format!("unknown rollout mode '{}'", p.mode))?;
    if mode == RolloutMode::Canary && !(1..=99).contains(&p.canary_percent) {
        return Err(format!("--canary {}%: the share must be 1% to 99%", p.canary_percent));
    }
    if mode == RolloutMode::Shadow && !p.abort_if.is_empty() {
        return Err("--abort-if judges a canary against its baseline: use it with --canary".into());
    }
    let abort_if = p.abort_if.iter().map(|c| AbortIf::parse(c)).collect::<Result<Vec<_>, _>>()?;
    Ok(RolloutPlan { mode, canary_percent: p.canary_percent, abort_if })
}

pub fn rollout(r: Rollout) -> pb::Rollout {
    pb::Rollout {
        service: r.service,
        version: r.version,
        base_version: r.base_version,
        mode: r.mode.as_str().into(),
        state: r.state.as_str().into(),
        canary_percent: r.canary_percent,
        canary_instances: r.canary_instances,
        abort_if: r.abort_if,
        author: r.author,
        started_unix_ms: r.started_unix_ms,
        ended_unix_ms: r.ended_unix_ms,
        ended_by: r.ended_by,
        reason: r.reason,
    }
}

pub fn rollout_report(r: RolloutReport) -> pb::RolloutStatusResponse {
    let side = |s: CanarySide| pb::CanarySide {
        p99_ms: s.p99_ms(),
        instances: s.instances.into_iter().collect(),
        requests: s.requests,
        refused: s.refused,
        refused_by_code: s.refused_by_code.into_iter().map(|(code, count)| pb::CodeCount { code, count }).collect(),
        server_errors: s.server_errors,
    };
    pb::RolloutStatusResponse {
        rollout: r.rollout.map(rollout),
        differences: r
            .differences
            .into_iter()
            .map(|d| pb::ShadowDifference {
                kind: if d.denied { "shadow_deny" } else { "shadow_allow" }.into(),
                route: d.route,
                rule: d.rule,
                code: d.code,
                client_id: d.client_id,
                count: d.count,
                example_request_ids: d.examples,
            })
            .collect(),
        canary: r.canary.as_ref().map(|c| side(c.canary.clone())),
        baseline: r.canary.map(|c| side(c.baseline)),
    }
}

pub fn apply_response(results: Vec<Applied>) -> pb::ApplyResponse {
    pb::ApplyResponse {
        results: results
            .into_iter()
            .map(|a| pb::ApplyResult {
                service: a.service,
                version: a.version,
                changed: a.changed,
                previous_version: a.previous_version,
                previous_yaml: a.previous_yaml,
                source_yaml: a.source_yaml,
                warnings: a.warnings,
                rollout: a.rollout.map(rollout),
            })
            .collect(),
    }
}

pub fn key_request(r: pb::CreateKeyRequest) -> KeyRequest {
    KeyRequest { service: r.service, client: r.client, plan: r.plan, expires_in_ms: r.expires_in_ms }
}

/// A key as listings show it: never the key, never its hash.
pub fn key_info(k: KeyRow) -> pb::KeyInfo {
    pb::KeyInfo {
        id: k.id,
        service: k.service,
        client: k.client,
        plan: k.plan,
        created_unix_ms: k.created_unix_ms,
        expires_unix_ms: k.expires_unix_ms,
        revoked_unix_ms: k.revoked_unix_ms,
        prefix: k.prefix,
    }
}

/// A secret value as listings show it: never the value.
pub fn secret_info(s: SecretRow) -> pb::SecretInfo {
    pb::SecretInfo { name: s.name, id: s.id, created_unix_ms: s.created_unix_ms, expires_unix_ms: s.expires_unix_ms }
}

pub fn sidecar_status(s: SidecarStatus) -> pb::SidecarStatus {
    let r = s.record;
    pb::SidecarStatus {
        service: r.service,
        instance: r.instance,
        connected: s.connected,
        peer: r.peer,
        acked_version: r.acked_version,
        acked_unix_ms: r.acked_unix_ms,
        nacked_version: r.nacked_version,
        nack_error: r.nack_error,
        nacked_unix_ms: r.nacked_unix_ms,
        last_seen_unix_ms: r.last_seen_unix_ms,
        current_version: s.current_version,
        acked_credentials: s.acked_credentials,
        current_credentials: s.current_credentials,
        replica: r.replica,
        shadow_version: r.shadow_version,
        shadow_error: r.shadow_error,
    }
}

/// The store's health, for `wardenctl status`.
pub fn store_health(h: crate::ops::StoreHealth) -> pb::StoreHealth {
    pb::StoreHealth { name: h.name, up: h.up, error: h.error, since_unix_ms: h.since_unix_ms }
}

pub fn invalid_policy(p: InvalidPolicy) -> pb::InvalidPolicy {
    pb::InvalidPolicy { service: p.service, version: p.version, error: p.error }
}

pub fn denial_filter(r: &pb::ListDenialsRequest) -> DenialFilter {
    DenialFilter {
        service: r.service.clone(),
        since_unix_ms: r.since_unix_ms,
        route: r.route.clone(),
        rule: r.rule.clone(),
        client: r.client.clone(),
        limit: r.limit,
        request_id: r.request_id.clone(),
        ..Default::default()
    }
}

pub fn stored_denial(d: StoredDenial) -> pb::StoredDenial {
    let r = d.denial;
    pb::StoredDenial {
        service: d.service,
        instance: d.instance,
        record: Some(pb::DenyRecord {
            unix_ms: r.unix_ms,
            request_id: r.request_id,
            trace_id: r.trace_id,
            route: r.route,
            rule: r.rule,
            code: r.code,
            status: r.status,
            client_id: r.client_id,
            client_ip: r.client_ip,
            method: r.method,
            host: r.host,
            path: r.path,
            dry_run: r.dry_run,
            request_id_from_client: r.request_id_from_client,
            policy_version: r.policy_version,
            headers: r.headers.into_iter().map(|(name, value)| pb::Header { name, value }).collect(),
            auth_provider: r.auth_provider,
            key_id: r.key_id,
            shadow: r.shadow,
            shadow_allowed_by: r.shadow_allowed_by,
        }),
    }
}

pub fn service_preview(p: ServicePreview) -> pb::ServicePreview {
    let change = |c: Change| pb::PreviewChange {
        route: c.route,
        rule: c.rule,
        code: c.code,
        client: c.client,
        requests: c.requests,
        samples: c.samples as u64,
        examples: c.examples,
        estimated: c.estimated,
    };
    let moved = |m: Moved| pb::PreviewMove {
        route: m.route,
        from: m.from,
        to: m.to,
        requests: m.requests,
        samples: m.samples as u64,
        examples: m.examples,
    };
    let r = p.report;
    pb::ServicePreview {
        newly_refused_share: r.newly_refused_share(),
        not_evaluable_share: r.not_evaluable_share(),
        service: p.service,
        current_version: p.current_version,
        samples: r.samples as u64,
        requests: r.requests,
        newly_refused: r.newly_refused.into_iter().map(change).collect(),
        newly_allowed: r.newly_allowed.into_iter().map(change).collect(),
        refused_otherwise: r.refused_otherwise.into_iter().map(change).collect(),
        route_changes: r.route_changes.into_iter().map(moved).collect(),
        rewrite_changes: r.rewrite_changes.into_iter().map(moved).collect(),
        not_evaluable: r
            .not_evaluable
            .into_iter()
            .map(|n| pb::PreviewNotEvaluable {
                reason: n.reason.to_owned(),
                requests: n.requests,
                samples: n.samples as u64,
            })
            .collect(),
    }
}

pub fn stored_sample(s: StoredSample) -> pb::StoredSample {
    pb::StoredSample { service: s.service, instance: s.instance, sample: Some(sample_to_proto(s.sample)) }
}

pub fn denial_group(r: Reviewed) -> pb::DenialGroup {
    let g = r.group;
    pb::DenialGroup {
        service: g.service,
        route: g.route,
        rule: g.rule,
        code: g.code,
        client_id: g.client_id,
        count: g.count,
        last_unix_ms: g.last_unix_ms,
        dry_run: g.dry_run,
        group_id: r.id,
        first_unix_ms: g.first_unix_ms,
        example_request_id: g.example_request_id,
        mark: r.mark.map(denial_mark),
    }
}

pub fn denial_mark(m: DenialMark) -> pb::DenialMark {
    pb::DenialMark {
        group_id: m.group,
        mark: m.mark.as_str().to_owned(),
        note: m.note,
        owner: m.owner,
        author: m.author,
        unix_ms: m.unix_ms,
    }
}

pub fn top_row(r: TopRow) -> pb::TopRow {
    let t = r.traffic;
    pb::TopRow {
        service: r.service,
        instance: r.instance,
        stats: Some(pb::RouteStats {
            route: t.route,
            interval_ms: t.interval_ms,
            requests: t.requests,
            denials: t.denials,
            latency_buckets: t.latency_buckets,
            server_errors: t.server_errors,
            refusals: t.refusals.into_iter().map(|(code, count)| pb::RefusalCount { code, count }).collect(),
            policy_version: t.policy_version,
        }),
        unix_ms: r.unix_ms,
    }
}

pub fn report(b: pb::ReportBatch) -> Report {
    Report {
        service: b.service,
        instance: b.instance,
        interval_ms: b.interval_ms,
        usage: b.usage.into_iter().map(|u| QuotaUsage { limit: u.limit, key: u.key, requests: u.requests }).collect(),
        denials: b.denials.into_iter().map(denial).collect(),
        denials_dropped: b.denials_dropped,
        routes: b
            .routes
            .into_iter()
            .map(|r| RouteTraffic {
                route: r.route,
                interval_ms: r.interval_ms,
                requests: r.requests,
                denials: r.denials,
                latency_buckets: r.latency_buckets,
                server_errors: r.server_errors,
                refusals: r.refusals.into_iter().map(|c| (c.code, c.count)).collect(),
                policy_version: r.policy_version,
            })
            .collect(),
        samples: b.samples.into_iter().map(sample).collect(),
        samples_dropped: b.samples_dropped,
        shadow_counts: b
            .shadow_counts
            .into_iter()
            .map(|c| ShadowCount {
                version: c.version,
                denied: c.kind == "shadow_deny",
                route: c.route,
                rule: c.rule,
                code: c.code,
                client_id: c.client_id,
                count: c.count,
                examples: c.example_request_ids,
            })
            .collect(),
    }
}

fn denial(d: pb::DenyRecord) -> Denial {
    Denial {
        unix_ms: d.unix_ms,
        request_id: d.request_id,
        trace_id: d.trace_id,
        route: d.route,
        rule: d.rule,
        code: d.code,
        status: d.status,
        client_id: d.client_id,
        client_ip: d.client_ip,
        method: d.method,
        host: d.host,
        path: d.path,
        dry_run: d.dry_run,
        request_id_from_client: d.request_id_from_client,
        policy_version: d.policy_version,
        headers: d.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        auth_provider: d.auth_provider,
        key_id: d.key_id,
        shadow: d.shadow,
        shadow_allowed_by: d.shadow_allowed_by,
    }
}

fn sample(s: pb::DecisionSample) -> Sample {
    Sample {
        unix_ms: s.unix_ms,
        request_id: s.request_id,
        method: s.method,
        host: s.host,
        path: s.path,
        client_ip: s.client_ip,
        client_id: s.client_id,
        auth_provider: s.auth_provider,
        key_id: s.key_id,
        headers: s.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        credential_headers: s.credential_headers,
        route: s.route,
        decision: s.decision,
        rule: s.rule,
        code: s.code,
        status: s.status,
        policy_version: s.policy_version,
        weight: s.weight,
        plan: s.plan,
    }
}

pub fn report_reply(r: QuotaReply) -> pb::ReportReply {
    pb::ReportReply {
        shares: r
            .shares
            .into_iter()
            .map(|s| pb::QuotaShare { limit: s.limit, key: s.key, fraction: s.fraction, ttl_ms: s.ttl_ms })
            .collect(),
        peers: r.peers.into_iter().map(|(limit, sidecars)| pb::LimitPeers { limit, sidecars }).collect(),
    }
}

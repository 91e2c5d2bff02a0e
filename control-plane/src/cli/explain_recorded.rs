//! `wardenctl explain --request-id ID [--service S]`: why a recorded request was refused.
//! Its deny record (from any sidecar; several if the id was reused) is rebuilt into the
//! request and replayed with the sidecar's own `decide`, step by step, through the version
//! that refused it and through the current one; with the near misses: the routes that
//! matched it but for the method or a header. What a record cannot replay is said, not
//! guessed: the credential (never kept) and the limit budgets of that moment.

use std::collections::HashMap;

use warden_policy::auth::Credentials;
use warden_policy::decide::{Action, Decision, Env, HeadCaps, Trace, decide};
use warden_policy::limits::view::Known;
use warden_policy::preview::replay::{Rebuilt, rebuild};
use warden_policy::snapshot::{Mismatch, Snapshot};
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1::{self as pb, GetPolicyRequest, ListDenialsRequest, StoredDenial};

use crate::cli::context::{Cli, Failure, Format, Outcome};
use crate::cli::output;

/// Matches listed at most.
const MAX_MATCHES: u32 = 20;

pub async fn run(cli: &Cli, request_id: &str, service: Option<&str>) -> Outcome {
    let req = ListDenialsRequest {
        service: service.unwrap_or_default().to_owned(),
        request_id: request_id.to_owned(),
        limit: MAX_MATCHES,
        ..Default::default()
    };
    let found = cli.admin().await?.list_denials(req).await?.into_inner().denials;
    if found.is_empty() {
        return Err(Failure::Refused(format!(
            "no refused request with id '{request_id}' in the deny log (it keeps --deny-retention, 7 days by default)"
        )));
    }
    // Each version's policy, fetched once.
    let mut policies: HashMap<(String, u64), (u64, Snapshot)> = HashMap::new();
    let mut matches = Vec::new();
    for d in &found {
        let r = d.record.clone().unwrap_or_default();
        let mut replays = Vec::new();
        for version in [r.policy_version, 0] {
            let key = (d.service.clone(), version);
            if !policies.contains_key(&key) {
                let fetched = policy(cli, &d.service, version).await?;
                policies.insert(key.clone(), fetched);
            }
            let (v, snapshot) = &policies[&key];
            if version == 0 && replays.iter().any(|x: &Replay| x.version == *v) {
                continue;
            }
            let label = if version == 0 { "current" } else { "that refused it" };
            replays.push(replay(snapshot, *v, label, &r));
        }
        matches.push((d, r, replays));
    }
    if cli.output != Format::Table {
        let out: Vec<_> = matches.iter().map(|(d, r, replays)| json(d, r, replays)).collect();
        output::structured(cli.output, &serde_json::json!({ "request_id": request_id, "matches": out }));
        return Ok(());
    }
    for (d, r, replays) in &matches {
        println!(
            "{} (sidecar {}) at {}: {} {}{} from {} refused {} {} by rule {} (v{})",
            output::cell(&d.service),
            output::cell(&d.instance),
            output::time(r.unix_ms),
            output::cell(&r.method),
            output::cell(&r.host),
            output::cell(&r.path),
            output::cell(if r.client_id.is_empty() { &r.client_ip } else { &r.client_id }),
            r.status,
            output::cell(&r.code),
            output::cell(&r.rule),
            r.policy_version
        );
        for x in replays {
            println!();
            println!("replayed through v{} ({})", x.version, x.label);
            let mut rows: Vec<Vec<String>> = x.steps.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
            for miss in &x.near_misses {
                rows.push(vec!["near miss".into(), miss.clone()]);
            }
            rows.push(vec!["decision".into(), x.decision.clone()]);
            output::table(&["STEP", "DETAIL"], &rows);
        }
        println!();
    }
    Ok(())
}

/// One replay's account.
struct Replay {
    version: u64,
    label: &'static str,
    steps: Vec<(String, String)>,
    near_misses: Vec<String>,
    decision: String,
}

/// A service's policy at `version` (0: the current one), compiled, with its number.
async fn policy(cli: &Cli, service: &str, version: u64) -> Result<(u64, Snapshot), Failure> {
    let v =
        cli.admin().await?.get_policy(GetPolicyRequest { service: service.to_owned(), version }).await?.into_inner();
    let parsed = parse_service(&format!("{service}@v{}", v.version), &v.source_yaml, Some(service))
        .map_err(|e| Failure::Refused(format!("v{} no longer validates: {e}", v.version)))?;
    let snapshot = Snapshot::try_from(&build(&parsed.policy, &parsed.source, v.version))
        .map_err(|e| Failure::Refused(e.to_string()))?;
    Ok((v.version, snapshot))
}

/// The deny record as the sample a replay reads.
fn as_sample(r: &pb::DenyRecord) -> pb::DecisionSample {
    pb::DecisionSample {
        unix_ms: r.unix_ms,
        request_id: r.request_id.clone(),
        method: r.method.clone(),
        host: r.host.clone(),
        path: r.path.clone(),
        client_ip: r.client_ip.clone(),
        client_id: r.client_id.clone(),
        auth_provider: r.auth_provider.clone(),
        key_id: r.key_id.clone(),
        headers: r.headers.clone(),
        policy_version: r.policy_version,
        weight: 1.0,
        ..Default::default()
    }
}

fn replay(snapshot: &Snapshot, version: u64, label: &'static str, r: &pb::DenyRecord) -> Replay {
    let rebuilt: Rebuilt = match rebuild(&as_sample(r)) {
        Ok(x) => x.refused_by(&r.rule),
        Err(why) => {
            return Replay {
                version,
                label,
                steps: Vec::new(),
                near_misses: Vec::new(),
                decision: format!("cannot be replayed: {why}"),
            };
        }
    };
    let (creds, known) = (Credentials::default(), Known::default());
    let env = Env {
        snapshot,
        creds: &creds,
        caps: HeadCaps::default(),
        limits: &known,
        now_ms: rebuilt.now_ms(),
        recorded: Some(rebuilt.auth()),
    };
    let mut trace = Trace::default();
    let d = decide(&env, &rebuilt.request(), Some(&mut trace));
    let steps = trace.steps.into_iter().map(|s| (s.label, s.detail)).collect();
    Replay {
        version,
        label,
        steps,
        near_misses: near_misses(snapshot, &rebuilt, &d),
        decision: decision(&d, &rebuilt, r),
    }
}

/// The decision in words; what the record cannot replay is said as recorded.
fn decision(d: &Decision<'_, '_>, rebuilt: &Rebuilt, r: &pb::DenyRecord) -> String {
    if let Some(why) = rebuilt.auth().unknown() {
        return format!("DENY {} {} (rule {}) as recorded: {why}", r.status, r.code, r.rule);
    }
    match &d.action {
        Action::Deny(refusal) => {
            format!("DENY {} {} (rule {})", refusal.status().as_u16(), refusal.code(), refusal.rule())
        }
        Action::Forward(f) if r.code == "rate_limited" => format!(
            "FORWARD via route '{}' while limit '{}' has budget (it had none when the request came)",
            f.route.name, r.rule
        ),
        Action::Forward(f) => format!("FORWARD via route '{}'", f.route.name),
        Action::Preflight(_) => "ANSWER the CORS preflight".into(),
    }
}

/// Routes that matched the request's host and path but not its method or a header: the
/// ones a caller most likely meant.
fn near_misses(snapshot: &Snapshot, rebuilt: &Rebuilt, d: &Decision<'_, '_>) -> Vec<String> {
    let req = rebuilt.request();
    let host = d.host.as_ref().map_or("", |h| h.name());
    let Some(path) = &d.path else { return Vec::new() };
    let key = snapshot.routing_key(path);
    snapshot
        .routes
        .iter()
        .filter(|route| d.route.is_none_or(|taken| !std::ptr::eq(taken, *route)))
        .filter_map(|route| match route.mismatch(req.method, host, &key, req.headers)? {
            Mismatch::Method => Some(format!(
                "route '{}' matches the host and path, not the method {} (it takes {})",
                route.name,
                req.method,
                route.methods.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            Mismatch::Header => Some(format!(
                "route '{}' matches the host, path and method, not the headers (it needs {})",
                route.name,
                route
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        })
        .collect()
}

fn json(d: &StoredDenial, r: &pb::DenyRecord, replays: &[Replay]) -> serde_json::Value {
    let replays: Vec<_> = replays
        .iter()
        .map(|x| {
            serde_json::json!({"version": x.version, "policy": x.label, "decision": x.decision,
                "near_misses": x.near_misses,
                "steps": x.steps.iter().map(|(k, v)| serde_json::json!({"step": k, "detail": v})).collect::<Vec<_>>()})
        })
        .collect();
    serde_json::json!({"service": d.service, "instance": d.instance, "time": output::time(r.unix_ms),
        "method": r.method, "host": r.host, "path": r.path, "client_ip": r.client_ip, "client_id": r.client_id,
        "status": r.status, "code": r.code, "rule": r.rule, "policy_version": r.policy_version, "replays": replays})
}

//! What `wardenctl explain` and the console's explain form both print: the sidecar's own
//! `decide` run on a described request, its trace turned into steps, then what it would
//! do with the request (its route's header changes, upstream, retries) and the verdict.
//! Pure: the callers find the credentials (an API key by its hash) and the limit budgets
//! they can, and say why what they could not find was not evaluated.

use warden_policy::auth::{AuthKind, AuthProvider, Credentials};
use warden_policy::decide::{Action, Env, Forward, HeadCaps, Request, Trace, decide};
use warden_policy::grpc::Caller;
use warden_policy::limits::LimitView;
use warden_policy::refusal::Refusal;
use warden_policy::snapshot::{HeaderOps, Route, Snapshot};
use warden_policy::yaml::format_duration;

/// One step: its label and what happened.
pub type Step = (String, String);

/// An explained request.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The trace and what the route would do, in order, without the verdict.
    pub steps: Vec<Step>,
    /// The last step: FORWARD, DENY or ANSWER, and why.
    pub verdict: String,
    /// "deny", "forward" or "preflight".
    pub decision: &'static str,
    pub refused: Option<Refused>,
    /// The upstream a forwarded request goes to.
    pub upstream: Option<String>,
}

/// How a refusal is answered.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: u16,
    /// For a gRPC caller.
    pub grpc_status: Option<u8>,
    pub code: &'static str,
    pub fault: &'static str,
}

/// What a decision reads here: the sidecar's default head caps, and `limits` only for the call.
pub fn env<'s, 'v>(
    snapshot: &'s Snapshot,
    creds: &'s Credentials,
    limits: &'v dyn LimitView,
    now_ms: i64,
) -> Env<'s, 'v> {
    Env { snapshot, creds, caps: HeadCaps::default(), limits, now_ms, recorded: None }
}

/// The route a request takes, found without credentials: it decides which the auth step needs.
pub fn route<'s>(snapshot: &'s Snapshot, req: &Request<'_>, limits: &dyn LimitView, now_ms: i64) -> Option<&'s Route> {
    let no_creds = Credentials::default();
    decide(&env(snapshot, &no_creds, limits, now_ms), req, None)
        .route
        .and_then(|r| snapshot.routes.iter().find(|x| x.name == r.name))
}

/// Why a provider's credential cannot be checked without the sidecar (None: it can be,
/// once the caller has the keys).
pub fn not_checkable(provider: &AuthProvider) -> Option<String> {
    match &provider.kind {
        AuthKind::Jwt(v) => v.jwks_file().map(|f| format!("the keys are in jwks_file {f} on the sidecar's host")),
        AuthKind::Hmac(v) => {
            Some(format!("the signature covers the body, which explain does not have (secret '{}')", v.secret))
        }
        AuthKind::ApiKey => None,
    }
}

/// Runs `decide` with a trace and describes it. `unsure`: why the credential was not
/// evaluated, if it was not; `limit_step` rewrites a limit step's detail (where its
/// budgets came from).
pub fn explain(
    snapshot: &Snapshot,
    creds: &Credentials,
    limits: &dyn LimitView,
    req: &Request<'_>,
    now_ms: i64,
    unsure: Option<&str>,
    limit_step: &dyn Fn(String) -> String,
) -> Explained {
    let mut trace = Trace::default();
    let decision = decide(&env(snapshot, creds, limits, now_ms), req, Some(&mut trace));
    let caller = Caller::of(req.headers);
    let unsure = match (&decision.action, unsure) {
        (Action::Deny(Refusal::Unauthenticated { failure, .. }), Some(why)) if failure.needs_credentials() => Some(why),
        (Action::Forward(Forward { body_check: Some(_), .. }), Some(why)) => Some(why),
        _ => None,
    };
    let mut steps: Vec<Step> = Vec::new();
    for step in trace.steps {
        let detail = match (step.label.as_str(), unsure) {
            ("auth", Some(why)) => {
                format!("{}: not evaluated: {why}", step.detail.split(':').next().unwrap_or_default())
            }
            ("limit", _) => limit_step(step.detail),
            _ => step.detail,
        };
        steps.push((step.label, detail));
    }
    let mut upstream = None;
    if let Action::Forward(f) = &decision.action {
        describe_ops(&mut steps, "request headers", &f.route.request_headers);
        describe_ops(&mut steps, "response headers", &f.route.response_headers);
        let up = &f.route.upstream;
        upstream = Some(up.name.to_string());
        let target = if up.endpoints.is_empty() {
            "the sidecar's --upstream".to_owned()
        } else {
            up.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        steps.push((
            "upstream".into(),
            format!("{} ({target}), {}, timeout {}", up.name, up.protocol.as_str(), format_duration(f.route.timeout)),
        ));
        if let Some(r) = &f.route.retries {
            let per_try = r.per_try_timeout.map(|d| format!(", {} a try", format_duration(d))).unwrap_or_default();
            steps.push(("retries".into(), format!("up to {} attempts{per_try}", r.attempts)));
        }
        if let (Some(_), Some(max)) = (caller, f.route.max_grpc_timeout) {
            steps.push(("deadline".into(), format!("the caller's grpc-timeout, at most {}", format_duration(max))));
        }
    }
    let (verdict, kind, refused) = match (&decision.action, decision.route, unsure) {
        (Action::Forward(f), _, _) => {
            let condition = unsure.map(|why| format!(" if the signature is valid ({why})")).unwrap_or_default();
            (format!("FORWARD via route '{}'{condition}", f.route.name), "forward", None)
        }
        // Not knowing is not a refusal: say what happens if the credential is good.
        (Action::Deny(_), Some(route), Some(why)) => {
            (format!("FORWARD via route '{}' if the credential is valid ({why})", route.name), "forward", None)
        }
        (Action::Preflight(p), route, _) => {
            let route = route.map_or("?", |r| &*r.name);
            let verdict = match &p.origin {
                Some(_) => format!("ANSWER 204 to the CORS preflight for route '{route}' (never forwarded)"),
                None => format!("ANSWER 204 without CORS headers for route '{route}' (dry run; never forwarded)"),
            };
            (verdict, "preflight", None)
        }
        (Action::Deny(r), _, _) => {
            // A gRPC caller is told the gRPC status; the code and rule are the same.
            let status = match caller {
                Some(_) => format!("gRPC {} {}", r.row().grpc.code(), r.row().grpc.name()),
                None => r.status().as_u16().to_string(),
            };
            let verdict =
                format!("DENY {status} {} (rule {}): {}", r.code(), r.rule(), r.message(Some(&snapshot.service)));
            let refused = Refused {
                status: r.status().as_u16(),
                grpc_status: caller.map(|_| r.row().grpc.code()),
                code: r.code(),
                fault: r.fault().as_str(),
            };
            (verdict, "deny", Some(refused))
        }
    };
    Explained { steps, verdict, decision: kind, refused, upstream }
}

fn describe_ops(steps: &mut Vec<Step>, label: &str, ops: &HeaderOps) {
    let mut parts: Vec<String> =
        ops.set.iter().map(|(k, v)| format!("set {k}: {}", v.to_str().unwrap_or("?"))).collect();
    parts.extend(ops.remove.iter().map(|k| format!("remove {k}")));
    if !parts.is_empty() {
        steps.push((label.into(), parts.join("; ")));
    }
}

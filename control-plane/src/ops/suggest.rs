//! For a refusal group a reviewer marked a false positive: the policy change that would
//! have let its requests through, where the rule is a limit (its rate doubled) or an access
//! list (the client's address let in), and what that change would do to recent traffic
//! (`apply --preview`'s replay of the decision samples). Nothing is applied: the change is
//! shown, to be made (or not) through `apply` like any other.

use ipnet::IpNet;
use std::net::IpAddr;
use warden_policy::yaml::{AccessSpec, Policy, Rate, parse_service};

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::ops::preview::{PreviewRequest, ServicePreview};
use crate::store::{DenialFilter, DenialGroup};

/// The samples a suggestion's preview replays: the last hour.
const PREVIEW_WINDOW_MS: i64 = 3_600_000;

/// A change that would have let a refusal group through.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub group: DenialGroup,
    /// What changes, in words.
    pub what: String,
    /// The live policy and the proposal, both as the policy model writes them (so their
    /// diff is the change alone).
    pub current_yaml: String,
    pub proposed_yaml: String,
    /// The proposal replayed over recent samples; the error if it could not be.
    pub preview: Result<ServicePreview, String>,
}

impl ControlPlane {
    /// The change that would have let group `id` through, when its rule is a limit or an
    /// access list; None for any other rule.
    pub async fn suggest(&self, id: &str) -> Result<Option<Suggestion>, OpsError> {
        let group = self.find_group(id).await?;
        let current = self.policy(&group.service, None).await?;
        let parsed = parse_service(&format!("{}@v{}", group.service, current.version), &current.source_yaml, None)
            .map_err(|e| OpsError::Precondition(e.to_string()))?;
        let mut proposed = parsed.policy.clone();
        let client_ip = match group.example_request_id.as_str() {
            "" => None,
            request_id => {
                let filter = DenialFilter { request_id: request_id.to_owned(), limit: 1, ..Default::default() };
                let found = self.denials(filter).await?;
                found.first().and_then(|d| d.denial.client_ip.parse::<IpAddr>().ok())
            }
        };
        let Some(what) = change(&mut proposed, &group.rule, client_ip) else { return Ok(None) };
        let yaml = |p: &Policy| yaml_serde::to_string(p).map_err(|e| OpsError::Internal(e.to_string()));
        let (current_yaml, proposed_yaml) = (yaml(&parsed.policy)?, yaml(&proposed)?);
        let request = PreviewRequest {
            file_name: "suggestion.yaml".into(),
            source: proposed_yaml.clone(),
            window_ms: PREVIEW_WINDOW_MS,
        };
        let preview = match self.preview(request).await {
            Ok(mut services) if !services.is_empty() => Ok(services.remove(0)),
            Ok(_) => Err("the preview returned nothing".into()),
            Err(e) => Err(e.to_string()),
        };
        Ok(Some(Suggestion { group, what, current_yaml, proposed_yaml, preview }))
    }
}

/// Whether a refusal's rule is one `suggest` can loosen: a limit (its refusals are
/// `rate_limited`) or an access list (`access.*`, `routes.NAME.access.*`).
pub fn loosenable(rule: &str, code: &str) -> bool {
    code == "rate_limited" || rule.starts_with("access.") || rule.contains(".access.")
}

/// Changes `policy` so `rule` lets the group through; what changed, or None when the rule
/// is neither a limit nor an access list (or the change cannot be made).
fn change(policy: &mut Policy, rule: &str, client_ip: Option<IpAddr>) -> Option<String> {
    if let Some(limit) = policy.limits.get_mut(rule) {
        let mut raised = Vec::new();
        let double = |r: &mut Rate| {
            let before = *r;
            r.count = r.count.saturating_mul(2);
            format!("{} to {}", rate(before), rate(*r))
        };
        if let Some(r) = limit.rate.as_mut() {
            raised.push(double(r));
        }
        if let Some(r) = limit.default.as_mut() {
            raised.push(format!("default {}", double(r)));
        }
        for (plan, r) in limit.plans.iter_mut() {
            raised.push(format!("plan {plan} {}", double(r)));
        }
        if let Some(b) = limit.burst.as_mut() {
            *b = b.saturating_mul(2);
        }
        return (!raised.is_empty()).then(|| format!("double limit '{rule}': {}", raised.join(", ")));
    }
    let ip = client_ip?;
    let (access, list) = if let Some(list) = rule.strip_prefix("access.") {
        (policy.access.get_or_insert_with(AccessSpec::default), list)
    } else {
        let rest = rule.strip_prefix("routes.")?;
        let (route, list) = rest.rsplit_once(".access.")?;
        let r = policy.routes.iter_mut().find(|r| r.name == route)?;
        (r.access.get_or_insert_with(AccessSpec::default), list)
    };
    let contains = |entry: &str| match entry.parse::<IpNet>() {
        Ok(net) => net.contains(&ip),
        Err(_) => entry.parse::<IpAddr>().is_ok_and(|a| a == ip),
    };
    match list {
        "deny" => {
            let removed: Vec<String> = access.deny.iter().filter(|e| contains(e)).cloned().collect();
            access.deny.retain(|e| !contains(e));
            (!removed.is_empty()).then(|| format!("remove {} from {rule}", removed.join(", ")))
        }
        "allow" => {
            access.allow.push(ip.to_string());
            Some(format!("add {ip} to {rule}"))
        }
        _ => None,
    }
}

fn rate(r: Rate) -> String {
    warden_policy::yaml::units::format_rate(r.count, r.period)
}

impl ControlPlane {
    /// The refusal group `id` (as `denial_groups` names it), over the whole deny log.
    pub(super) async fn find_group(&self, id: &str) -> Result<DenialGroup, OpsError> {
        let filter = DenialFilter { limit: 10_000, ..DenialFilter::default() };
        let groups = self.stored("denial_groups", self.store.denial_groups(filter)).await?;
        groups.into_iter().find(|g| g.id() == id).ok_or_else(|| {
            OpsError::NotFound(format!(
                "no refusal group '{id}' in the deny log (the ids are in `wardenctl denials --group`)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Policy {
        parse_service("p.yaml", yaml, None).unwrap().policy
    }

    const YAML: &str = "service: orders
access: { deny: [203.0.113.0/24, 198.51.100.7] }
routes:
  - name: api
    match: { path_prefix: /api }
    access: { allow: [10.0.0.0/8] }
    limits: [per-client]
limits:
  per-client: { key: client_ip, rate: 5/min, burst: 5 }
";

    #[test]
    fn a_limit_is_doubled() {
        let mut p = policy(YAML);
        let what = change(&mut p, "per-client", None).unwrap();
        assert_eq!(what, "double limit 'per-client': 5/min to 10/min");
        assert_eq!(p.limits["per-client"].rate.unwrap().count, 10);
        assert_eq!(p.limits["per-client"].burst, Some(10));
    }

    #[test]
    fn an_address_is_let_in_through_the_list_that_refused_it() {
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let mut p = policy(YAML);
        assert_eq!(change(&mut p, "access.deny", Some(ip)).unwrap(), "remove 203.0.113.0/24 from access.deny");
        assert_eq!(p.access.as_ref().unwrap().deny, ["198.51.100.7"]);
        let mut p = policy(YAML);
        assert_eq!(
            change(&mut p, "routes.api.access.allow", Some(ip)).unwrap(),
            "add 203.0.113.9 to routes.api.access.allow"
        );
        assert_eq!(p.routes[0].access.as_ref().unwrap().allow, ["10.0.0.0/8", "203.0.113.9"]);
        // Any other rule, or no address to let in: no suggestion.
        assert!(change(&mut policy(YAML), "keys", Some(ip)).is_none());
        assert!(change(&mut policy(YAML), "access.deny", None).is_none());
    }
}

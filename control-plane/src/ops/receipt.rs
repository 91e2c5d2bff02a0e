//! What the control plane takes from a sidecar, checked on receipt. A sidecar token may
//! be stolen, and what sidecars send ends up in front of people (`wardenctl status`,
//! `denials`, `top`) and in the store: so names must be names, and free text (a NACK
//! error, a deny record's path or client) is kept with its control characters written out
//! (`\x1b`) and cut to `MAX_FIELD_BYTES`. Deny records and decision samples are made safe rather than refused:
//! refusing a record whose path holds odd bytes would let a client hide from the review
//! queue by adding them.

use warden_policy::text::{escape_within, is_instance_name};
use warden_policy::yaml::is_service_name;
use warden_proto::{MAX_DENIALS, MAX_SAMPLES};

use crate::ops::error::OpsError;
use crate::store::{Denial, Sample, ShadowCount};
use crate::traffic::RouteTraffic;

/// The longest text field stored from a sidecar; longer ones are cut.
pub const MAX_FIELD_BYTES: usize = 2 << 10;
/// The most headers kept with one deny record or sample.
const MAX_HEADERS: usize = 32;
/// Shadow difference groups a batch carries at most (the sidecar's cap).
const MAX_SHADOW_GROUPS: usize = 1_000;

/// A Hello (or a report stream's first batch) must name a valid service and instance.
pub fn check_names(service: &str, instance: &str) -> Result<(), OpsError> {
    if !is_service_name(service) {
        return Err(OpsError::Invalid("the service must be 1-63 characters of a-z, 0-9 and '-'".to_owned()));
    }
    if !is_instance_name(instance) {
        return Err(OpsError::Invalid("the instance must be 1-253 printable ASCII characters, no spaces".to_owned()));
    }
    Ok(())
}

/// A NACK's error, as stored and shown.
pub fn nack_error(error: &str) -> String {
    escape_within(error, MAX_FIELD_BYTES).into_owned()
}

/// Makes a batch's deny records safe to store and show; keeps at most `MAX_DENIALS` of
/// them (what a sidecar sends at most) and returns how many it dropped.
pub fn clean_denials(records: &mut Vec<Denial>) -> usize {
    let dropped = records.len().saturating_sub(MAX_DENIALS);
    records.truncate(MAX_DENIALS);
    for d in records.iter_mut() {
        let Denial {
            request_id,
            trace_id,
            route,
            rule,
            code,
            client_id,
            client_ip,
            method,
            host,
            path,
            auth_provider,
            key_id,
            ..
        } = d;
        for field in [request_id, trace_id, route, rule, code, client_id, client_ip, method, host, path] {
            clean(field);
        }
        for field in [auth_provider, key_id] {
            clean(field);
        }
        clean_headers(&mut d.headers);
    }
    dropped
}

/// Makes a batch's decision samples safe to store and show, as deny records; keeps at
/// most `MAX_SAMPLES` and returns how many it dropped.
pub fn clean_samples(samples: &mut Vec<Sample>) -> usize {
    let dropped = samples.len().saturating_sub(MAX_SAMPLES);
    samples.truncate(MAX_SAMPLES);
    for s in samples.iter_mut() {
        let Sample {
            request_id,
            method,
            host,
            path,
            client_ip,
            client_id,
            auth_provider,
            key_id,
            plan,
            route,
            decision,
            rule,
            code,
            ..
        } = s;
        for field in [request_id, method, host, path, client_ip, client_id, auth_provider, key_id, route, decision] {
            clean(field);
        }
        for field in [rule, code, plan] {
            clean(field);
        }
        clean_headers(&mut s.headers);
        s.credential_headers.truncate(MAX_HEADERS);
        s.credential_headers.iter_mut().for_each(clean);
        // A weight is a count of requests: nothing else is stored.
        if !s.weight.is_finite() || s.weight < 0.0 {
            s.weight = 0.0;
        }
    }
    dropped
}

/// Makes a batch's shadow counts safe to store and show (what a sidecar sends at most:
/// `MAX_SHADOW_GROUPS` groups, 3 examples each).
pub fn clean_shadow_counts(counts: &mut Vec<ShadowCount>) {
    counts.truncate(MAX_SHADOW_GROUPS);
    for c in counts.iter_mut() {
        let ShadowCount { route, rule, code, client_id, examples, .. } = c;
        for field in [route, rule, code, client_id] {
            clean(field);
        }
        examples.truncate(3);
        examples.iter_mut().for_each(clean);
    }
}

/// Headers kept with a record: at most `MAX_HEADERS`, each name and value made safe.
fn clean_headers(headers: &mut Vec<(String, String)>) {
    headers.truncate(MAX_HEADERS);
    for (name, value) in headers.iter_mut() {
        clean(name);
        clean(value);
    }
}

/// Route names in a traffic report, as `wardenctl top` shows them.
pub fn clean_routes(routes: &mut [RouteTraffic]) {
    for r in routes {
        clean(&mut r.route);
    }
}

fn clean(field: &mut String) {
    if let std::borrow::Cow::Owned(safe) = escape_within(field, MAX_FIELD_BYTES) {
        *field = safe;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_names() {
        assert!(check_names("orders", "orders-7d9f8-abcde").is_ok());
        assert!(check_names("orders", "host:15001").is_ok());
        for (service, instance) in
            [("", "i"), ("Orders", "i"), ("orders", ""), ("orders", "i\x1b]0;x\x07"), ("orders", "a b"), ("o\rx", "i")]
        {
            let err = check_names(service, instance).unwrap_err();
            assert!(matches!(err, OpsError::Invalid(_)), "{service:?} {instance:?}");
        }
    }

    #[test]
    fn deny_records_are_escaped_cut_and_counted() {
        let planted = Denial {
            path: "/x\x1b]0;pwned\x07\r".into(),
            host: "h\u{202e}".into(),
            client_id: "c".repeat(10_000),
            method: "GET".into(),
            status: 404,
            ..Default::default()
        };
        let mut records = vec![planted; MAX_DENIALS + 3];
        assert_eq!(clean_denials(&mut records), 3);
        assert_eq!(records.len(), MAX_DENIALS);
        let d = &records[0];
        assert_eq!(d.path, "/x\\x1b]0;pwned\\x07\\r");
        assert_eq!(d.host, "h\\u{202e}");
        assert!(d.client_id.len() <= MAX_FIELD_BYTES && d.client_id.ends_with('…'));
        assert_eq!((d.method.as_str(), d.status), ("GET", 404));
    }

    #[test]
    fn nack_errors_are_escaped() {
        assert_eq!(nack_error("bad\x1b[2Jthing"), "bad\\x1b[2Jthing");
        assert!(nack_error(&"e".repeat(5000)).len() <= MAX_FIELD_BYTES);
    }
}

//! What a decision sample keeps of a request's headers: those the policy reads (route
//! matches, CORS, limit keys, the gRPC and body-size checks), never a credential. Worked
//! out once per snapshot, so a sampled request only copies a few values.

use http::{HeaderMap, HeaderName, header};
use warden_proto::v1 as pb;

use crate::limits::limit::LimitKey;
use crate::snapshot::compiled::Snapshot;

/// Headers no sample ever keeps the value of, whatever the policy reads.
const ALWAYS_SECRET: [HeaderName; 3] = [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION];

/// The headers a snapshot's samples keep, and the credential headers whose presence (not
/// value) they note.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SampledHeaders {
    pub read: Vec<HeaderName>,
    pub credentials: Vec<HeaderName>,
}

impl SampledHeaders {
    /// The headers `snapshot` reads, less its credentials (every auth provider's header,
    /// `authorization`, `cookie`).
    pub fn of(snapshot: &Snapshot) -> SampledHeaders {
        let mut credentials: Vec<HeaderName> = ALWAYS_SECRET.to_vec();
        credentials.extend(snapshot.auth.iter().map(|a| a.header.clone()));
        let mut read = vec![header::CONTENT_TYPE, header::CONTENT_LENGTH];
        for route in &snapshot.routes {
            read.extend(route.headers.iter().map(|(name, _)| name.clone()));
            if route.cors.is_some() {
                read.extend([header::ORIGIN, header::ACCESS_CONTROL_REQUEST_METHOD]);
            }
        }
        read.extend(snapshot.limits.iter().filter_map(|l| match &l.key {
            LimitKey::Header(h) => Some(h.clone()),
            _ => None,
        }));
        dedup(&mut credentials);
        read.retain(|h| !credentials.contains(h));
        dedup(&mut read);
        SampledHeaders { read, credentials }
    }

    /// What a sample keeps of `headers`: the values of those read, and the names of the
    /// credential headers present.
    pub fn capture(&self, headers: &HeaderMap) -> (Vec<pb::Header>, Vec<String>) {
        let mut kept = Vec::new();
        for name in &self.read {
            for value in headers.get_all(name) {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                kept.push(pb::Header { name: name.as_str().to_owned(), value });
            }
        }
        let present =
            self.credentials.iter().filter(|n| headers.contains_key(*n)).map(|n| n.as_str().to_owned()).collect();
        (kept, present)
    }
}

fn dedup(names: &mut Vec<HeaderName>) {
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
}

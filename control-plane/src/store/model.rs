//! What the store keeps, as the rest of the control plane sees it: plain domain types, no
//! wire (protobuf) and no database types, so the operations layer reads the same values
//! whichever store is behind the `Store` interface.

/// One stored version of one service's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub service: String,
    pub version: u64,
    pub author: String,
    pub created_unix_ms: i64,
    pub message: String,
    pub content_hash: String,
    /// Empty in listings (`history`, `list_current`).
    pub source_yaml: String,
}

/// What is current, cheaply: every service's current version and the credentials
/// revision (what a replica compares with what it serves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heads {
    /// By service name.
    pub versions: Vec<(String, u64)>,
    pub credentials_revision: u64,
}

/// The replica elected to evaluate (the canary's automatic abort), as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub replica: String,
    /// Since when it leads (ms).
    pub since_unix_ms: i64,
    /// When it last confirmed it still leads (ms).
    pub renewed_unix_ms: i64,
}

/// Quota demand one replica tells the others: per global limit and key, requests per
/// second (summed over its sidecars); and how many of its sidecars share each limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaDemand {
    pub keys: Vec<(String, Vec<u8>, f64)>,
    pub peers: Vec<(String, u32)>,
}

/// Everything a store holds that `copy-store` carries, as it was written.
#[derive(Debug, Clone, Default)]
pub struct StoreCopy {
    /// Every version of every service, with sources.
    pub versions: Vec<PolicyVersion>,
    pub keys: Vec<KeyRow>,
    /// The secret values still verifying, with their values.
    pub secrets: Vec<SecretRow>,
    pub sidecars: Vec<SidecarRecord>,
    pub denials: Vec<StoredDenial>,
    /// Every rollout: which versions are candidates (running or aborted) and not current.
    pub rollouts: Vec<Rollout>,
    /// The reviewers' marks on refusal groups.
    pub marks: Vec<DenialMark>,
    /// The console's session signing key (sessions stay valid across the move).
    pub console_key: Vec<u8>,
}

/// One route's latest traffic window on one sidecar, as a replica shares it for
/// `wardenctl top` on the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficRow {
    pub service: String,
    pub instance: String,
    pub route: String,
    /// When the sidecar reported it.
    pub unix_ms: i64,
    pub interval_ms: u64,
    pub requests: u64,
    pub denials: u64,
    pub latency_buckets: Vec<u64>,
}

/// One side of a running canary, summed over one replica's sidecars for the judging
/// window: what a replica shares so the evaluator can add up every replica's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanaryWindow {
    pub service: String,
    /// The candidate.
    pub version: u64,
    pub replica: String,
    /// The canary's side (true) or the baseline's.
    pub canary: bool,
    pub instances: Vec<String>,
    pub requests: u64,
    pub refused: u64,
    pub refused_by_code: Vec<(String, u64)>,
    pub server_errors: u64,
    pub latency_buckets: Vec<u64>,
}

/// A document to store as the next version of its service.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub service: String,
    pub author: String,
    pub message: String,
    pub content_hash: String,
    pub source_yaml: String,
    /// Store it as a rollout's candidate, leaving the current version current.
    pub rollout: Option<NewRollout>,
    /// Abort the service's running rollout first; without it a running rollout refuses
    /// the change (`StoreError::RolloutRunning`).
    pub force: bool,
}

/// What storing a document did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: PolicyVersion,
    /// The version it replaced (or, for a rollout, the live one), if any.
    pub previous: Option<PolicyVersion>,
    /// False when the content equals the current version's: nothing was written.
    pub changed: bool,
    /// The rollout it started.
    pub rollout: Option<Rollout>,
    /// The running rollout `force` aborted.
    pub aborted: Option<Rollout>,
}

/// Why a rollout ended when a forced apply or rollback replaced it.
pub const FORCED: &str = "aborted by a forced apply or rollback";

/// How a candidate is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutMode {
    /// Decided beside the live version in every sidecar, never enforced.
    Shadow,
    /// Served by a share of the service's sidecars.
    Canary,
}

impl RolloutMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutMode::Shadow => "shadow",
            RolloutMode::Canary => "canary",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutMode> {
        match s {
            "shadow" => Some(RolloutMode::Shadow),
            "canary" => Some(RolloutMode::Canary),
            _ => None,
        }
    }
}

/// Where a rollout is: running (as its mode), or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    Shadow,
    Canary,
    /// The candidate became the live version.
    Promoted,
    /// Every sidecar went back to the live version; the candidate is never current.
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Shadow => "shadow",
            RolloutState::Canary => "canary",
            RolloutState::Promoted => "promoted",
            RolloutState::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutState> {
        match s {
            "shadow" => Some(RolloutState::Shadow),
            "canary" => Some(RolloutState::Canary),
            "promoted" => Some(RolloutState::Promoted),
            "aborted" => Some(RolloutState::Aborted),
            _ => None,
        }
    }

    /// Shadow or canary: not over yet.
    pub fn running(self) -> bool {
        matches!(self, RolloutState::Shadow | RolloutState::Canary)
    }
}

/// Requests a candidate in shadow decided otherwise than the live version, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowCount {
    pub version: u64,
    /// `shadow_deny` (the candidate would refuse) or `shadow_allow` (it would let through).
    pub denied: bool,
    pub route: String,
    pub rule: String,
    pub code: String,
    pub client_id: String,
    pub count: u64,
    /// The first few requests' ids.
    pub examples: Vec<String>,
}

/// A rollout to start with a candidate version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollout {
    pub mode: RolloutMode,
    /// Canary: the share of the sidecars, and which ones.
    pub canary_percent: u32,
    pub canary_instances: Vec<String>,
    /// Canary: the conditions that abort it (`refused>+2%`, ...).
    pub abort_if: Vec<String>,
}

impl NewRollout {
    /// The rollout this starts for `version` of `service`, now.
    pub fn begin(&self, service: &str, version: u64, base_version: u64, author: &str) -> Rollout {
        let state = match self.mode {
            RolloutMode::Shadow => RolloutState::Shadow,
            RolloutMode::Canary => RolloutState::Canary,
        };
        Rollout {
            service: service.to_owned(),
            version,
            base_version,
            mode: self.mode,
            state,
            canary_percent: self.canary_percent,
            canary_instances: self.canary_instances.clone(),
            abort_if: self.abort_if.clone(),
            author: author.to_owned(),
            started_unix_ms: crate::clock::now_unix_ms(),
            ended_unix_ms: 0,
            ended_by: String::new(),
            reason: String::new(),
        }
    }
}

/// One rollout of one candidate version, stored beside the versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub service: String,
    /// The candidate.
    pub version: u64,
    /// The live version when it started.
    pub base_version: u64,
    pub mode: RolloutMode,
    pub state: RolloutState,
    pub canary_percent: u32,
    pub canary_instances: Vec<String>,
    pub abort_if: Vec<String>,
    pub author: String,
    pub started_unix_ms: i64,
    /// 0 while running.
    pub ended_unix_ms: i64,
    pub ended_by: String,
    /// Why it ended.
    pub reason: String,
}

/// The last thing a sidecar said, as kept across control-plane restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarRecord {
    pub service: String,
    pub instance: String,
    pub peer: String,
    pub acked_version: u64,
    pub acked_unix_ms: i64,
    pub nacked_version: u64,
    pub nack_error: String,
    pub nacked_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    /// The credentials revision it ACKed on its current stream.
    pub acked_credentials: u64,
    /// The replica its stream is (or was last) on.
    pub replica: String,
    /// Whether that replica had its stream open when it wrote this.
    pub connected: bool,
    /// The rollout candidate it runs in shadow (0: none), or the error it refused it with.
    pub shadow_version: u64,
    pub shadow_error: String,
}

/// A stored API key. The key itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub service: String,
    pub client: String,
    pub plan: String,
    pub sha256: Vec<u8>,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub created_unix_ms: i64,
    /// 0 = never.
    pub expires_unix_ms: i64,
    /// 0 = active.
    pub revoked_unix_ms: i64,
}

/// A key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub service: String,
    pub client: String,
    pub plan: String,
    pub sha256: Vec<u8>,
    pub prefix: String,
    pub expires_unix_ms: i64,
}

/// One value of a named secret. `value` is empty in listings.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub id: String,
    pub name: String,
    pub value: Vec<u8>,
    pub created_unix_ms: i64,
    /// 0 = no end.
    pub expires_unix_ms: i64,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("expires_unix_ms", &self.expires_unix_ms)
            .finish()
    }
}

/// A service's credentials as of one revision, read together.
#[derive(Debug, Clone, Default)]
pub struct CredentialRows {
    /// The credentials revision the rows are current at.
    pub revision: u64,
    /// The service's keys changed after the revision asked for.
    pub keys: Vec<KeyRow>,
    /// The still-verifying values of the secrets asked for.
    pub secrets: Vec<SecretRow>,
}

/// How much of the deny log is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age_ms: i64,
    pub max_rows: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age_ms: 7 * 24 * 3_600_000, max_rows: 100_000 }
    }
}

impl Retention {
    /// Rows a rollout's shadow refusals may take, apart from the review queue's own: a
    /// tenth as many, so a candidate that refuses much never pushes real refusals out.
    pub fn shadow_rows(&self) -> i64 {
        (self.max_rows / 10).max(1)
    }
}

/// One refused request (or one that would have been, in dry run), as a sidecar reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    pub unix_ms: i64,
    pub request_id: String,
    pub trace_id: String,
    pub route: String,
    pub rule: String,
    /// The reason code of the response body (`key_revoked`, `rate_limited`, ...).
    pub code: String,
    pub status: u32,
    pub client_id: String,
    pub client_ip: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub dry_run: bool,
    /// `request_id` is the client's own `x-request-id`, not one Warden made.
    pub request_id_from_client: bool,
    /// The policy version that refused it (0: reported by a sidecar too old to say).
    pub policy_version: u64,
    /// The headers its policy reads, never a credential: (name, value).
    pub headers: Vec<(String, String)>,
    /// The auth provider the caller proved itself to, and with which API key (its id).
    pub auth_provider: String,
    pub key_id: String,
    /// A rollout candidate's refusal, decided in shadow, not enforced (`policy_version` is
    /// the candidate's).
    pub shadow: bool,
    /// An enforced refusal the candidate in shadow (this version) would have let through.
    pub shadow_allowed_by: u64,
}

/// A denial with the sidecar that reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDenial {
    pub service: String,
    pub instance: String,
    pub denial: Denial,
}

/// Denials counted by service, route, rule, reason and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialGroup {
    pub service: String,
    pub route: String,
    pub rule: String,
    pub code: String,
    pub client_id: String,
    pub count: u64,
    pub first_unix_ms: i64,
    pub last_unix_ms: i64,
    /// Of them, decided in dry run.
    pub dry_run: u64,
    /// The newest one's request id (what `explain --request-id` replays).
    pub example_request_id: String,
}

impl DenialGroup {
    /// The group's stable id, what a mark is kept under.
    pub fn id(&self) -> String {
        group_id(&self.service, &self.route, &self.rule, &self.code, &self.client_id)
    }
}

/// A refusal group's id: the first 12 hex digits of the SHA-256 of its service, route,
/// rule, reason and client. Short enough to type (`wardenctl denials mark ID`), the same
/// on every replica and across restarts, and it needs no table of its own.
pub fn group_id(service: &str, route: &str, rule: &str, code: &str, client_id: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [service, route, rule, code, client_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..6])
}

/// How many refusals of one group fell in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialBucket {
    /// The group's id (`group_id`).
    pub group: String,
    /// The bucket's start (ms).
    pub start_unix_ms: i64,
    pub count: u64,
}

/// What a reviewer decided about a refusal group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The policy did what it is meant to do.
    Expected,
    /// Warden refused requests it should have let through.
    FalsePositive,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Expected => "expected",
            Mark::FalsePositive => "false-positive",
        }
    }

    pub fn parse(s: &str) -> Option<Mark> {
        match s {
            "expected" => Some(Mark::Expected),
            "false-positive" => Some(Mark::FalsePositive),
            _ => None,
        }
    }
}

/// A refusal group's mark, with who set it and why; the latest one counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialMark {
    /// The group's id (`group_id`).
    pub group: String,
    pub service: String,
    pub route: String,
    pub rule: String,
    pub code: String,
    pub client_id: String,
    pub mark: Mark,
    pub note: String,
    /// Who looks after it (free text: there are no user accounts).
    pub owner: String,
    /// Who set the mark.
    pub author: String,
    pub unix_ms: i64,
}

/// Which denials to read; empty strings and 0 match everything.
#[derive(Debug, Clone, Default)]
pub struct DenialFilter {
    pub service: String,
    pub since_unix_ms: i64,
    pub route: String,
    pub rule: String,
    pub client: String,
    pub limit: u32,
    /// One request's refusals ("" = any).
    pub request_id: String,
    /// Real refusals (the default), or a shadow rollout's differences.
    pub shadow: ShadowRecords,
    /// Which groups `denial_groups` returns first (and keeps, within `limit`).
    pub group_order: GroupOrder,
}

/// How refusal groups are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupOrder {
    /// Most refusals first (`wardenctl denials --group`).
    #[default]
    MostFirst,
    /// The most recently refused first (the console's queue).
    NewestFirst,
}

impl GroupOrder {
    /// The `ORDER BY` of a grouped query (the same SQL on both stores).
    pub fn sql(self) -> &'static str {
        match self {
            GroupOrder::MostFirst => "COUNT(*) DESC, MAX(unix_ms) DESC",
            GroupOrder::NewestFirst => "MAX(unix_ms) DESC, COUNT(*) DESC",
        }
    }
}

/// Which deny records a filter reads: the review queue holds enforced (and dry-run)
/// refusals; a shadow rollout's records are read only for that rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShadowRecords {
    /// Every record that is not a candidate's shadow refusal.
    #[default]
    Real,
    /// The candidate (this version) would refuse them; the live version let them through.
    Denied(u64),
    /// The live version refused them; the candidate (this version) would let them through.
    AllowedBy(u64),
}

impl ShadowRecords {
    /// (shadow flag, version) for a query: (0, 0) = real records; (1, v) = `Denied(v)`;
    /// (2, v) = `AllowedBy(v)`.
    pub fn code(self) -> (i64, i64) {
        let v = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match self {
            ShadowRecords::Real => (0, 0),
            ShadowRecords::Denied(x) => (1, v(x)),
            ShadowRecords::AllowedBy(x) => (2, v(x)),
        }
    }
}

/// How many decision samples are kept: the newest `max_rows` per service, none older
/// than `max_age_ms`.
#[derive(Debug, Clone, Copy)]
pub struct SampleRetention {
    pub max_age_ms: i64,
    pub max_rows: i64,
}

impl Default for SampleRetention {
    fn default() -> Self {
        SampleRetention { max_age_ms: 3_600_000, max_rows: 100_000 }
    }
}

/// One request's head and the decision taken on it, as a sidecar sampled it (what
/// `apply --preview` replays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub unix_ms: i64,
    pub request_id: String,
    pub method: String,
    pub host: String,
    /// Normalized, without the query string.
    pub path: String,
    pub client_ip: String,
    pub client_id: String,
    pub auth_provider: String,
    pub key_id: String,
    /// The plan of the identity it proved ("" = none).
    pub plan: String,
    /// The headers the policy reads, never a credential: (name, value).
    pub headers: Vec<(String, String)>,
    /// Names of the credential headers it carried.
    pub credential_headers: Vec<String>,
    pub route: String,
    /// forward, deny, would_deny or preflight.
    pub decision: String,
    pub rule: String,
    pub code: String,
    pub status: u32,
    pub policy_version: u64,
    /// How many requests it stands for.
    pub weight: f64,
}

/// A sample with the sidecar that took it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    pub service: String,
    pub instance: String,
    pub sample: Sample,
}

/// Which samples to read: of a service (or all), since a time, newest first, at most
/// `limit`.
#[derive(Debug, Clone, Default)]
pub struct SampleFilter {
    pub service: String,
    pub since_unix_ms: i64,
    pub limit: u32,
}

/// A change made through another replica, from the store's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A service has a new current version, or its rollout started or ended.
    Policy(String),
    /// A service's keys changed (Some), or secrets, which any service may use (None).
    Credentials(Option<String>),
    /// Anything may have changed (the feed was down): compare everything.
    Resync,
}

/// Header pairs as both stores keep them: a JSON array of `[name, value]`.
pub fn headers_to_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}

/// The pairs `headers_to_json` wrote; anything else reads as none.
pub fn headers_from_json(json: &str) -> Vec<(String, String)> {
    serde_json::from_str(json).unwrap_or_default()
}

//! Who a caller proved to be, whichever provider checked: the one type every verifier
//! returns and the limits, the proxy and the app's headers read.

use std::sync::Arc;

/// The prefix every Warden API key starts with, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "wdn_";

/// Who the caller is, as the app is told (`x-warden-client`, `x-warden-plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub client: Arc<str>,
    pub plan: Option<Arc<str>>,
    /// The API key's id, when a key proved it (decision samples and deny records say
    /// which key, never the key).
    pub key_id: Option<Arc<str>>,
}

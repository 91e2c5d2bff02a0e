//! Auth for a recorded request (a decision sample) replayed through a policy: the sample
//! kept who the caller proved to be and which credential headers it carried, never the
//! credentials. So a route whose provider is the one the caller proved itself to passes
//! it as that identity; a route asking for a credential the request did not carry fails as
//! it would live; anything else (another provider, a credential never checked) cannot be
//! answered from the recording, and the replay says so instead of guessing.

use std::cell::Cell;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::auth::credentials::Credentials;
use crate::auth::failure::AuthFailure;
use crate::auth::identity::Identity;
use crate::auth::provider::{AuthProvider, HeadCheck};

/// What a recorded request proved, standing in for its credentials.
#[derive(Debug, Default)]
pub struct RecordedAuth {
    /// The provider it proved itself to, and as whom.
    pub proved: Option<(Arc<str>, Identity)>,
    /// The credential headers it carried (their values were never kept).
    pub credential_headers: Vec<HeaderName>,
    /// The provider that refused it when it arrived, if one did (a deny record's rule).
    pub refused_by: Option<Arc<str>>,
    /// Set when a check could not be answered from the recording: why.
    unknown: Cell<Option<&'static str>>,
}

impl RecordedAuth {
    pub fn new(proved: Option<(Arc<str>, Identity)>, credential_headers: Vec<HeaderName>) -> Self {
        RecordedAuth { proved, credential_headers, refused_by: None, unknown: Cell::new(None) }
    }

    /// Why a check of this replay could not be answered, if one could not.
    pub fn unknown(&self) -> Option<&'static str> {
        self.unknown.get()
    }

    /// `provider`'s head check of the recorded request. One the recording cannot answer
    /// passes (so the decision goes on) and is noted in `unknown`.
    pub fn check<'a>(
        &self,
        provider: &'a AuthProvider,
        creds: &'a Credentials,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Result<HeadCheck<'a>, AuthFailure> {
        match &self.proved {
            Some((name, identity)) if **name == *provider.name => return Ok(HeadCheck::Passed(identity.clone())),
            Some(_) => return Ok(self.cannot("the route asks another auth provider than the request proved itself to")),
            None => {}
        }
        if self.refused_by.as_deref() == Some(&*provider.name) {
            return Ok(
                self.cannot("this provider refused it when it arrived; the credential is not kept to check again")
            );
        }
        if self.credential_headers.contains(&provider.header) {
            return Ok(self.cannot("the request carried a credential the recording cannot check"));
        }
        // No credential where this provider looks: it fails exactly as it would live.
        provider.check_head(creds, headers, now_ms)
    }

    fn cannot(&self, why: &'static str) -> HeadCheck<'static> {
        if self.unknown.get().is_none() {
            self.unknown.set(Some(why));
        }
        HeadCheck::Passed(Identity { client: Arc::from(""), plan: None, key_id: None })
    }
}

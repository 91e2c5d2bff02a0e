//! Who is signed in to the console. Sign-in takes the admin token (changes allowed) or the
//! read-only token (`--console-read-token-file`), compared in constant time, and a name
//! that changes made from the console are recorded under. The session is a cookie the
//! control plane signs (HMAC-SHA256) with a key kept in the store, so any replica accepts
//! a session another made, and nothing about sessions is stored. The cookie also carries a
//! fingerprint of the token it was made with: replacing a token ends its sessions.
//! A change needs the session's CSRF token (an HMAC of the session's random nonce) in the
//! form, so another site cannot make a signed-in browser change anything.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use crate::clock::now_unix_ms;
use crate::ops::{ControlPlane, OpsError};

/// The session cookie's name.
pub const COOKIE: &str = "warden_session";
/// How long a session lasts.
const LIFETIME_MS: i64 = 12 * 3_600_000;
/// The longest name a session records changes under.
pub const MAX_NAME: usize = 64;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything the admin token allows.
    Admin,
    /// Look, explain; change nothing.
    Read,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Read => "read",
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// Who signed in (free text), the author of their changes.
    pub name: String,
    /// What every form that changes something must carry back.
    pub csrf: String,
}

impl Session {
    /// The author recorded for a change made in this session.
    pub fn author(&self) -> String {
        format!("{} (console)", self.name)
    }

    pub fn can_change(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether a form's CSRF token is this session's.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The cookie's signed content.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    /// "admin" or "read".
    r: String,
    /// The name.
    n: String,
    /// Expiry (Unix ms).
    x: i64,
    /// A random nonce, the CSRF token's seed.
    s: String,
    /// A fingerprint of the token signed in with.
    t: String,
}

/// Signs and checks sessions.
pub struct Sessions {
    admin_token: Option<Arc<str>>,
    read_token: Option<Arc<str>>,
    /// Cookies are `Secure` when the console is served over TLS.
    pub secure: bool,
    key: OnceCell<hmac::Key>,
}

impl Sessions {
    pub fn new(admin_token: Option<String>, read_token: Option<String>, secure: bool) -> Sessions {
        Sessions {
            admin_token: admin_token.map(Into::into),
            read_token: read_token.map(Into::into),
            secure,
            key: OnceCell::new(),
        }
    }

    /// With no admin token the control plane accepts every caller; so does the console.
    pub fn open(&self) -> bool {
        self.admin_token.is_none()
    }

    /// The signing key, read from the store once (made there by the first replica to ask).
    async fn key(&self, cp: &ControlPlane) -> Result<&hmac::Key, OpsError> {
        self.key.get_or_try_init(|| async { Ok(hmac::Key::new(hmac::HMAC_SHA256, &cp.console_key().await?)) }).await
    }

    /// Reads (or makes) the signing key now, so sessions keep working through a later
    /// store outage.
    pub async fn preload(&self, cp: &ControlPlane) -> Result<(), OpsError> {
        self.key(cp).await.map(drop)
    }

    /// The role a presented token signs in as, if any. Every token is compared, so the
    /// time taken says nothing about which one matched.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let matches =
            |t: &Option<Arc<str>>| t.as_deref().is_some_and(|t| bool::from(presented.as_bytes().ct_eq(t.as_bytes())));
        let (admin, read) = (matches(&self.admin_token), matches(&self.read_token));
        match (admin, read) {
            (true, _) => Some(Role::Admin),
            (false, true) => Some(Role::Read),
            // Open: no token is asked for, and none presented is admin.
            _ if self.open() && presented.is_empty() => Some(Role::Admin),
            _ => None,
        }
    }

    fn token(&self, role: Role) -> &str {
        match role {
            Role::Admin => self.admin_token.as_deref().unwrap_or(""),
            Role::Read => self.read_token.as_deref().unwrap_or(""),
        }
    }

    /// A new session's `Set-Cookie` value.
    pub async fn start(&self, cp: &ControlPlane, role: Role, name: &str) -> Result<String, OpsError> {
        let key = self.key(cp).await?;
        let mut nonce = [0u8; 16];
        SystemRandom::new().fill(&mut nonce).map_err(|_| OpsError::Internal("no randomness from the OS".into()))?;
        let claims = Claims {
            r: role.as_str().into(),
            n: name.into(),
            x: now_unix_ms() + LIFETIME_MS,
            s: hex::encode(nonce),
            t: fingerprint(key, self.token(role)),
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|e| OpsError::Internal(e.to_string()))?);
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(key, payload.as_bytes()));
        Ok(self.cookie(format!("{payload}.{tag}"), LIFETIME_MS / 1000))
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn end(&self) -> String {
        self.cookie(String::new(), 0)
    }

    fn cookie(&self, value: String, max_age_s: i64) -> String {
        Cookie::build((COOKIE, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .max_age(cookie::time::Duration::seconds(max_age_s))
            .build()
            .to_string()
    }

    /// The session a request's `Cookie` header carries, if it is valid: signed with the
    /// store's key, not expired, made with the token configured now.
    pub async fn session(&self, cp: &ControlPlane, cookies: &str) -> Option<Session> {
        let value =
            Cookie::split_parse(cookies).filter_map(Result::ok).find(|c| c.name() == COOKIE)?.value().to_owned();
        let (payload, tag) = value.split_once('.')?;
        let key = self.key(cp).await.ok()?;
        hmac::verify(key, payload.as_bytes(), &URL_SAFE_NO_PAD.decode(tag).ok()?).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let role = match claims.r.as_str() {
            "admin" => Role::Admin,
            "read" => Role::Read,
            _ => return None,
        };
        let same_token = claims.t.as_bytes().ct_eq(fingerprint(key, self.token(role)).as_bytes());
        if claims.x < now_unix_ms() || !bool::from(same_token) || (role == Role::Read && self.read_token.is_none()) {
            return None;
        }
        let csrf = hex::encode(&hmac::sign(key, format!("csrf\0{}", claims.s).as_bytes()).as_ref()[..16]);
        Some(Session { role, name: claims.n, csrf })
    }
}

/// Names a token without revealing it: an HMAC under the console key.
fn fingerprint(key: &hmac::Key, token: &str) -> String {
    hex::encode(&hmac::sign(key, format!("token\0{token}").as_bytes()).as_ref()[..8])
}

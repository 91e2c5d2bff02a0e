//! Bearer tokens on the gRPC port: `wardenctl` must present the admin token; sidecars a
//! sidecar token, either the shared one or one made for their service, which admits them
//! to that service's policy, keys and secrets only (the handlers check the service a
//! sidecar names against what its token admits). Compared in constant time; with no token
//! configured every caller is accepted (the binary says so loudly at start-up).

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` against one expected token.
#[derive(Clone)]
pub struct BearerToken(Option<Arc<str>>);

impl BearerToken {
    pub fn new(token: Option<String>) -> Self {
        BearerToken(token.map(Into::into))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else { return Ok(req) };
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong bearer token"))
        }
    }
}

/// What a sidecar's token admits it to; put in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// The shared sidecar token, or none configured.
    AnyService,
    Service(Arc<str>),
}

impl Admitted {
    /// Refuses a sidecar that names a service its token is not for.
    pub fn check(&self, service: &str) -> Result<(), Status> {
        match self {
            Admitted::Service(s) if &**s != service => {
                Err(Status::permission_denied(format!("this sidecar token is for service '{s}', not '{service}'")))
            }
            _ => Ok(()),
        }
    }
}

/// Sidecar tokens: a shared one and/or one per service.
#[derive(Clone, Default)]
pub struct SidecarTokens {
    shared: Option<Arc<str>>,
    per_service: Arc<Vec<(Arc<str>, Arc<str>)>>,
}

impl SidecarTokens {
    pub fn new(shared: Option<String>, per_service: Vec<(String, String)>) -> Self {
        SidecarTokens {
            shared: shared.map(Into::into),
            per_service: Arc::new(per_service.into_iter().map(|(s, t)| (s.into(), t.into())).collect()),
        }
    }

    /// Whether any token is required.
    pub fn is_open(&self) -> bool {
        self.shared.is_none() && self.per_service.is_empty()
    }
}

impl Interceptor for SidecarTokens {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if self.is_open() {
            req.extensions_mut().insert(Admitted::AnyService);
            return Ok(req);
        }
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .as_bytes()
            .to_vec();
        let matches = |t: &str| bool::from(presented.ct_eq(t.as_bytes()));
        // Every token is compared, so the time taken says nothing about which one matched.
        let mut admitted = None;
        if self.shared.as_deref().is_some_and(matches) {
            admitted = Some(Admitted::AnyService);
        }
        for (service, token) in self.per_service.iter() {
            if matches(token) && admitted.is_none() {
                admitted = Some(Admitted::Service(service.clone()));
            }
        }
        match admitted {
            Some(a) => {
                req.extensions_mut().insert(a);
                Ok(req)
            }
            None => Err(Status::unauthenticated("missing or wrong bearer token")),
        }
    }
}

//! Bearer tokens on the gRPC port: sidecars must present the sidecar token, `wardenctl`
//! the admin token. Compared in constant time; with no token configured every caller is
//! accepted (the binary says so loudly at start-up).

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

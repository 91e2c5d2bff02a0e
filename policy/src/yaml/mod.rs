//! The policy model: the YAML format operators write, its validation, and the builder
//! that turns it into the snapshot sidecars enforce.
//!
//! This module is the one authority on what a policy means. The control plane calls it
//! to validate and build, `wardenctl validate`/`explain` call it offline, and the
//! sidecar's `--policy-file` mode uses it too, so there is one parser and one builder.

pub mod build;
pub mod locate;
pub mod model;
pub mod parse;
pub mod units;
pub mod validate;

pub use build::{
    DEFAULT_AUTH_HEADER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_JWT_LEEWAY, DEFAULT_MAX_BODY, DEFAULT_STRIPE_TOLERANCE,
    DEFAULT_TIMEOUT, SCHEMA, build, content_hash,
};
pub use model::APP_UPSTREAM;
pub use model::{
    AccessSpec, AuthKind, AuthSpec, CertSpec, ClientIpSpec, DefaultsSpec, Dur, EscapedSlashes, HeaderOpsSpec,
    HmacScheme, LimitSpec, MatchSpec, Mode, OutlierSpec, Percent, Policy, Rate, RetriesSpec, RetryBudgetSpec,
    RetryOnSpec, RewriteSpec, RouteSpec, Scope, Size, TlsSpec, UpstreamProtocol, UpstreamSpec, UpstreamTlsSpec,
};
pub use parse::{Diagnostic, ParsedPolicy, PolicyErrors, parse_file, parse_service};
pub use units::{format_duration, format_rate, format_size, parse_duration, parse_rate, parse_size, period_word};
pub use validate::{is_secret_name, is_service_name};

#[cfg(test)]
mod tests;

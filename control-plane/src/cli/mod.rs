//! `wardenctl`: a gRPC client of the control plane's admin API, one file per command.
//! `command.rs` is the command line and its dispatch; `context.rs` what every command
//! shares (the connection, failures and exit codes, file reading); `output.rs` tables,
//! JSON and escaping. Commands translate arguments into requests and answers into output;
//! every rule is the control plane's (or, offline, the policy crate's).

mod apply;
pub mod command;
mod context;
mod denials;
mod diff;
mod explain;
mod explain_recorded;
mod fallback;
mod get;
mod history;
mod inject;
mod keys;
mod output;
mod preview;
mod rollback;
mod rollout;
mod samples;
mod secrets;
mod status;
mod top;
mod validate;

pub use command::Wardenctl;
pub use context::{Cli, Failure, Format, Outcome};

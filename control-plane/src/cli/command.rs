//! The `wardenctl` command line: the global options (`context::Cli`) and one subcommand
//! per file, and the dispatch from one to the other.

use clap::{Parser, Subcommand};

use crate::cli::context::{Cli, Outcome};
use crate::cli::{
    apply, denials, diff, explain, fallback, get, history, inject, keys, rollback, rollout, samples, secrets, status,
    top, validate,
};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "wardenctl", version, about = "Apply, inspect and explain Warden policy.")]
pub struct Wardenctl {
    #[command(flatten)]
    pub cli: Cli,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a policy file, show the diff, store a new version and push it.
    Apply(apply::Args),
    /// Check a policy file offline; no server needed.
    Validate(validate::Args),
    /// Show a service's current (or given) policy, or list every service.
    Get(get::Args),
    /// Show what applying a file would change, or how another control plane differs.
    Diff(diff::Args),
    /// List a service's versions, newest first.
    History(history::Args),
    /// Make an earlier version current again (as a new version).
    Rollback(rollback::Args),
    /// A candidate tried in shadow or on a canary: status, promote, abort.
    Rollout(rollout::Args),
    /// Every sidecar: service, instance, ACKed version, last NACK, last seen.
    Status(status::Args),
    /// Show every step the sidecar takes for a described request.
    Explain(explain::Args),
    /// The review queue: refused requests, newest first, or grouped.
    Denials(denials::Args),
    /// Per route: requests per second, share refused, p50/p99, per sidecar and merged.
    Top(top::Args),
    /// Decision samples: the recent requests `apply --preview` replays, newest first.
    Samples(samples::Args),
    /// Add the Warden sidecar to Kubernetes workloads (prints the result).
    Inject(inject::Args),
    /// Create, list and revoke API keys.
    Keys(keys::Args),
    /// Set and list webhook secrets.
    Secrets(secrets::Args),
    /// Signed bundles of a service's policy for pods that start while no replica answers.
    Fallback(fallback::Args),
}

impl Wardenctl {
    /// Runs the chosen command.
    pub async fn run(mut self) -> Outcome {
        // `fallback export -o FILE`: the one command whose --output is a file.
        let file = match &self.command {
            Command::Fallback(_) => self.cli.output_arg.take(),
            _ => None,
        };
        self.cli.read_format()?;
        let cli = &self.cli;
        match &self.command {
            Command::Apply(a) => apply::run(cli, a).await,
            Command::Validate(a) => validate::run(cli, a),
            Command::Get(a) => get::run(cli, a).await,
            Command::Diff(a) => diff::run(cli, a).await,
            Command::History(a) => history::run(cli, a).await,
            Command::Rollback(a) => rollback::run(cli, a).await,
            Command::Rollout(a) => rollout::run(cli, a).await,
            Command::Status(a) => status::run(cli, a).await,
            Command::Explain(a) => explain::run(cli, a).await,
            Command::Denials(a) => denials::run(cli, a).await,
            Command::Top(a) => top::run(cli, a).await,
            Command::Samples(a) => samples::run(cli, a).await,
            Command::Inject(a) => inject::run(cli, a),
            Command::Keys(a) => keys::run(cli, a).await,
            Command::Secrets(a) => secrets::run(cli, a).await,
            Command::Fallback(a) => fallback::run(cli, a, file).await,
        }
    }
}

//! `wardenctl apply -f FILE [--dry-run] [-m MESSAGE]`: validate locally, send, print the
//! diff of each service and the version it became. `--preview` shows instead what the
//! file would do to recent requests (`preview.rs`); `--shadow` and `--canary N%` start a
//! rollout of the change instead of publishing it (`rollout.rs`).

use warden_policy::yaml::parse_file;
use warden_proto::v1::{ApplyRequest, RolloutPlan};

use crate::cli::context::{Cli, Failure, Format, Outcome, author, read_file};
use crate::cli::{output, preview, rollout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// Validate and show the diff; store nothing.
    #[arg(long, conflicts_with = "preview")]
    dry_run: bool,
    /// Replay recent sampled requests through the current and this policy and show what
    /// changes; store nothing.
    #[arg(long)]
    preview: bool,
    /// With --preview: exit 4 if more than this share of the sampled requests would be
    /// newly refused (like 0.5%), or if there are no samples to judge.
    #[arg(long, requires = "preview", value_parser = preview::parse_share)]
    max_new_denials: Option<f64>,
    /// With --preview: replay the samples of this long ago until now.
    #[arg(long, requires = "preview", value_parser = humantime::parse_duration, default_value = "1h")]
    since: std::time::Duration,
    /// Why: kept with the version.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Recorded as the version's author (default: $USER@host).
    #[arg(long, env = "WARDEN_AUTHOR")]
    author: Option<String>,
    /// Store it as a candidate that every sidecar decides beside the live version, never
    /// enforced; `wardenctl rollout status` shows where they differ.
    #[arg(long, conflicts_with_all = ["canary", "preview", "dry_run"])]
    shadow: bool,
    /// Store it as a candidate served by this share of the service's sidecars (like 25%);
    /// the others stay on the live version as the baseline.
    #[arg(long, value_parser = parse_percent, conflicts_with_all = ["preview", "dry_run"])]
    canary: Option<u32>,
    /// With --canary: abort by itself when this holds over the last 30 s ('refused>+2%',
    /// '5xx>+1%', 'p99>+50ms', 'p99>1.5x'); several mean any.
    #[arg(long = "abort-if", requires = "canary")]
    abort_if: Vec<String>,
    /// Abort a rollout running for a service in the file first.
    #[arg(long)]
    force: bool,
}

/// "25%" (or "25") → 25, within 1..=99.
fn parse_percent(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim().trim_end_matches('%').parse().map_err(|_| format!("'{s}': expected a share like 25%"))?;
    if (1..=99).contains(&n) { Ok(n) } else { Err(format!("'{s}': the share must be 1% to 99%")) }
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let source = read_file(&a.file)?;
    // Refuse early, offline, with the same parser the server uses.
    parse_file(&a.file, &source).map_err(|e| Failure::Refused(e.to_string()))?;
    if a.preview {
        return preview::run(cli, &a.file, source, a.since, a.max_new_denials).await;
    }
    let rollout = match (a.shadow, a.canary) {
        (true, _) => Some(RolloutPlan { mode: "shadow".into(), ..Default::default() }),
        (false, Some(percent)) => {
            Some(RolloutPlan { mode: "canary".into(), canary_percent: percent, abort_if: a.abort_if.clone() })
        }
        (false, None) => None,
    };
    let resp = cli
        .admin()
        .await?
        .apply(ApplyRequest {
            file_name: a.file.clone(),
            source,
            author: author(a.author.as_deref()),
            message: a.message.clone().unwrap_or_default(),
            dry_run: a.dry_run,
            rollout,
            force: a.force,
        })
        .await?
        .into_inner();

    if cli.output != Format::Table {
        let results: Vec<_> = resp
            .results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "service": r.service, "version": r.version, "changed": r.changed,
                    "previous_version": r.previous_version, "dry_run": a.dry_run, "warnings": r.warnings,
                    "diff": output::diff(&r.previous_yaml, &r.source_yaml, "current", "new"),
                    "rollout": r.rollout.as_ref().map(rollout::json),
                })
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "results": results }));
        return Ok(());
    }
    for r in &resp.results {
        for w in &r.warnings {
            eprintln!("warning: {}", output::lines(w));
        }
        if !r.changed {
            println!("{}: unchanged (v{})", output::cell(&r.service), r.version);
            continue;
        }
        let old = if r.previous_version == 0 {
            "(none)".to_owned()
        } else {
            format!("{}@v{}", r.service, r.previous_version)
        };
        print!("{}", output::lines(&output::diff(&r.previous_yaml, &r.source_yaml, &old, &a.file)));
        if a.dry_run {
            println!("{}: would become v{} (dry run: nothing stored)", output::cell(&r.service), r.version);
        } else if let Some(ro) = &r.rollout {
            println!("{}", rollout::started(ro));
        } else {
            println!("{}: applied as v{}", output::cell(&r.service), r.version);
        }
    }
    Ok(())
}

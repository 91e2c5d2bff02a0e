//! `wardenctl status [--service S]`: every sidecar the control plane knows, with the
//! version it ACKed, the credentials revision it checks against, the last NACK and its
//! error, and when it was last seen; then every service whose stored policy no longer
//! validates with the control plane's release (not served until a valid version replaces
//! it), whether the control plane's store answers, and which replica is the evaluator.

use warden_proto::v1::{Rollout, SidecarStatus, StatusRequest};

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::{output, rollout};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    service: Option<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let resp =
        cli.admin().await?.status(StatusRequest { service: a.service.clone().unwrap_or_default() }).await?.into_inner();
    let (sidecars, invalid, store) = (resp.sidecars, resp.invalid_policies, resp.store.unwrap_or_default());
    let (evaluator, rollouts) = (resp.evaluator, resp.rollouts);
    if cli.output != Format::Table {
        let rows: Vec<_> = sidecars
            .iter()
            .map(|s| {
                serde_json::json!({
                    "service": s.service, "instance": s.instance, "connected": s.connected, "peer": s.peer,
                    "acked_version": s.acked_version, "acked": output::time(s.acked_unix_ms),
                    "current_version": s.current_version, "in_sync": s.acked_version == s.current_version,
                    "acked_credentials": s.acked_credentials, "current_credentials": s.current_credentials,
                    "nacked_version": s.nacked_version, "nack_error": s.nack_error, "nacked": output::time(s.nacked_unix_ms),
                    "last_seen": output::time(s.last_seen_unix_ms), "replica": s.replica,
                    "shadow_version": s.shadow_version, "shadow_error": s.shadow_error,
                })
            })
            .collect();
        let invalid: Vec<_> = invalid
            .iter()
            .map(|p| serde_json::json!({ "service": p.service, "version": p.version, "error": p.error }))
            .collect();
        let store = serde_json::json!({
            "name": store.name, "up": store.up, "error": store.error, "since": output::time(store.since_unix_ms),
        });
        let evaluator =
            evaluator.map(|e| serde_json::json!({ "replica": e.replica, "since": output::time(e.since_unix_ms) }));
        output::structured(
            cli.output,
            &serde_json::json!({
                "sidecars": rows, "invalid_policies": invalid, "store": store, "evaluator": evaluator,
                "rollouts": rollouts.iter().map(rollout::json).collect::<Vec<_>>(),
            }),
        );
        return Ok(());
    }
    match store.up {
        true => println!("store: up ({})", output::cell(&store.name)),
        false => println!(
            "store: DOWN since {} ({}): {} (sidecars keep being served; changes fail until it is back)",
            output::ago(store.since_unix_ms),
            output::cell(&store.name),
            output::cell(&store.error)
        ),
    }
    match evaluator {
        Some(e) => println!("evaluator: {} (since {})", output::cell(&e.replica), output::ago(e.since_unix_ms)),
        None => println!("evaluator: none elected now (one is within seconds of a replica reaching the database)"),
    }
    if sidecars.is_empty() {
        println!("no sidecars have connected");
    } else {
        table(&sidecars, &rollouts);
    }
    if !rollouts.is_empty() {
        println!();
        println!("ROLLOUTS (each service's latest)");
        for line in rollout::lines(&rollouts) {
            println!("{line}");
        }
    }
    if !invalid.is_empty() {
        println!();
        println!(
            "STORED POLICIES THAT NO LONGER VALIDATE (not served: their sidecars keep their last known good policy)"
        );
        for p in &invalid {
            println!(
                "{} v{}: apply a fixed policy or roll back to a version that validates",
                output::cell(&p.service),
                p.version
            );
            for line in output::lines(&p.error).lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

fn table(sidecars: &[SidecarStatus], rollouts: &[Rollout]) {
    // A running canary's sidecars serve its candidate: not behind, a canary.
    let canary_of = |s: &SidecarStatus| {
        rollouts
            .iter()
            .find(|r| r.service == s.service && r.state == "canary" && r.canary_instances.contains(&s.instance))
    };
    let rows: Vec<Vec<String>> = sidecars
        .iter()
        .map(|s| {
            let state = match (s.connected, s.replica.as_str()) {
                (true, "") => "connected".to_owned(),
                (true, replica) => format!("connected ({})", output::cell(replica)),
                (false, _) => "gone".to_owned(),
            };
            let sync = match canary_of(s) {
                Some(r) if s.acked_version == r.version => "canary",
                _ if s.acked_version == s.current_version => "in sync",
                _ => "behind",
            };
            let shadow = match (s.shadow_version, s.shadow_error.as_str()) {
                (0, "") => String::new(),
                (_, "") => format!("; shadow v{}", s.shadow_version),
                (_, e) => format!("; shadow refused: {e}"),
            };
            let nack =
                if s.nacked_version == 0 { "-".to_owned() } else { format!("v{}: {}", s.nacked_version, s.nack_error) };
            vec![
                s.service.clone(),
                s.instance.clone(),
                state,
                format!("v{} ({sync}, current v{}){shadow}", s.acked_version, s.current_version),
                format!(
                    "r{}{}",
                    s.acked_credentials,
                    if s.acked_credentials == s.current_credentials { "" } else { " (behind)" }
                ),
                output::ago(s.last_seen_unix_ms),
                nack,
            ]
        })
        .collect();
    output::table(&["SERVICE", "INSTANCE", "STATE", "ACKED", "CREDENTIALS", "LAST SEEN", "LAST NACK"], &rows);
}

//! `wardenctl status [--service S]`: every sidecar the control plane knows, with the
//! version it ACKed, the credentials revision it checks against, the last NACK and its
//! error, and when it was last seen.

use warden_proto::v1::StatusRequest;

use super::{Cli, Format, Outcome, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    service: Option<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let sidecars = cli
        .admin()
        .await?
        .status(StatusRequest { service: a.service.clone().unwrap_or_default() })
        .await?
        .into_inner()
        .sidecars;
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
                    "last_seen": output::time(s.last_seen_unix_ms),
                })
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "sidecars": rows }));
        return Ok(());
    }
    if sidecars.is_empty() {
        println!("no sidecars have connected");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sidecars
        .iter()
        .map(|s| {
            let state = if s.connected { "connected" } else { "gone" };
            let sync = if s.acked_version == s.current_version { "in sync" } else { "behind" };
            let nack =
                if s.nacked_version == 0 { "-".to_owned() } else { format!("v{}: {}", s.nacked_version, s.nack_error) };
            vec![
                s.service.clone(),
                s.instance.clone(),
                state.to_owned(),
                format!("v{} ({sync}, current v{})", s.acked_version, s.current_version),
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
    Ok(())
}

//! `wardenctl keys create|list|revoke`: API keys. `create` prints the key once; nothing
//! can show it again, since the control plane keeps only its SHA-256.

use std::time::Duration;

use warden_proto::v1::{CreateKeyRequest, KeyInfo, ListKeysRequest, RevokeKeyRequest};

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Make a key for a client of a service; prints it once.
    Create {
        #[arg(long)]
        service: String,
        /// Who holds the key: the app receives it as x-warden-client.
        #[arg(long)]
        client: String,
        /// The client's plan: the app receives it as x-warden-plan; limits key on it.
        #[arg(long)]
        plan: Option<String>,
        /// Lifetime, like 90d or 12h; default: no expiry.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Ids, clients, plans and dates; never a key.
    List {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        client: Option<String>,
    },
    /// Revoke a key by id; every sidecar of its service refuses it within a second.
    Revoke { id: String },
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let mut admin = cli.admin().await?;
    match &a.command {
        KeysCommand::Create { service, client, plan, expires } => {
            let req = CreateKeyRequest {
                service: service.clone(),
                client: client.clone(),
                plan: plan.clone().unwrap_or_default(),
                expires_in_ms: expires.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            let created = admin.create_key(req).await?.into_inner();
            let info = created.info.unwrap_or_default();
            if cli.output != Format::Table {
                let mut v = json(&info);
                v["key"] = created.key.into();
                output::structured(cli.output, &v);
                return Ok(());
            }
            println!("{}", created.key);
            eprintln!(
                "key {} for client '{}' of '{}'{}. This is the only time the key is shown: store it now.",
                output::cell(&info.id),
                output::cell(&info.client),
                output::cell(&info.service),
                if info.expires_unix_ms > 0 {
                    format!(", expires {}", output::time(info.expires_unix_ms))
                } else {
                    String::new()
                }
            );
        }
        KeysCommand::List { service, client } => {
            let req = ListKeysRequest {
                service: service.clone().unwrap_or_default(),
                client: client.clone().unwrap_or_default(),
            };
            let keys = admin.list_keys(req).await?.into_inner().keys;
            if cli.output != Format::Table {
                output::structured(
                    cli.output,
                    &serde_json::json!({ "keys": keys.iter().map(json).collect::<Vec<_>>() }),
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        k.service.clone(),
                        k.client.clone(),
                        if k.plan.is_empty() { "-".into() } else { k.plan.clone() },
                        format!("{}…", k.prefix),
                        output::time(k.created_unix_ms),
                        if k.expires_unix_ms == 0 { "never".into() } else { output::time(k.expires_unix_ms) },
                        state(k),
                    ]
                })
                .collect();
            output::table(&["ID", "SERVICE", "CLIENT", "PLAN", "KEY", "CREATED", "EXPIRES", "STATE"], &rows);
        }
        KeysCommand::Revoke { id } => {
            let k = admin.revoke_key(RevokeKeyRequest { id: id.clone() }).await?.into_inner();
            if cli.output != Format::Table {
                output::structured(cli.output, &json(&k));
                return Ok(());
            }
            println!(
                "revoked {} (client '{}' of '{}') at {}",
                output::cell(&k.id),
                output::cell(&k.client),
                output::cell(&k.service),
                output::time(k.revoked_unix_ms)
            );
        }
    }
    Ok(())
}

fn state(k: &KeyInfo) -> String {
    if k.revoked_unix_ms > 0 {
        "revoked".into()
    } else if k.expires_unix_ms > 0 && k.expires_unix_ms <= crate::store::now_unix_ms() {
        "expired".into()
    } else {
        "active".into()
    }
}

fn json(k: &KeyInfo) -> serde_json::Value {
    serde_json::json!({
        "id": k.id, "service": k.service, "client": k.client, "plan": k.plan, "prefix": k.prefix,
        "created": output::time(k.created_unix_ms),
        "expires": (k.expires_unix_ms > 0).then(|| output::time(k.expires_unix_ms)),
        "revoked": (k.revoked_unix_ms > 0).then(|| output::time(k.revoked_unix_ms)),
        "state": state(k),
    })
}

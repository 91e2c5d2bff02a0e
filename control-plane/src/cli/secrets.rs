//! `wardenctl secrets set|list`: named webhook secrets. `set` adds a value; the values
//! already set keep verifying for `--retire-previous-after` (default 24h), so a sender
//! can switch to the new secret without a gap. Values are never printed.

use std::time::Duration;

use warden_proto::v1::{ListSecretsRequest, SecretInfo, SetSecretRequest};

use crate::cli::context::{Cli, Failure, Format, Outcome, read_file};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Add a value to a secret (creating it).
    Set {
        name: String,
        /// Read the value from a file (`-` = stdin); a trailing newline is dropped.
        #[arg(long, conflicts_with = "from_literal", required_unless_present = "from_literal")]
        from_file: Option<String>,
        /// The value itself (visible in shell history and `ps`; prefer --from-file).
        #[arg(long)]
        from_literal: Option<String>,
        /// How long the values already set keep verifying; 0s retires them now.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        retire_previous_after: Duration,
    },
    /// Names, ids and dates; never a value.
    List,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    match &a.command {
        SecretsCommand::Set { name, from_file, from_literal, retire_previous_after } => {
            let value = match (from_file, from_literal) {
                (Some(f), _) => {
                    let text = read_file(f)?;
                    text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned()
                }
                (None, Some(v)) => v.clone(),
                (None, None) => return Err(Failure::Usage("give --from-file F or --from-literal V".into())),
            };
            let req = SetSecretRequest {
                name: name.clone(),
                value: value.into_bytes(),
                retire_previous_after_ms: u64::try_from(retire_previous_after.as_millis()).unwrap_or(u64::MAX),
            };
            let s = cli.admin().await?.set_secret(req).await?.into_inner();
            if cli.output != Format::Table {
                output::structured(cli.output, &json(&s));
                return Ok(());
            }
            println!("secret '{}': value {} added", output::cell(&s.name), output::cell(&s.id));
        }
        SecretsCommand::List => {
            let secrets = cli.admin().await?.list_secrets(ListSecretsRequest {}).await?.into_inner().secrets;
            if cli.output != Format::Table {
                output::structured(
                    cli.output,
                    &serde_json::json!({ "secrets": secrets.iter().map(json).collect::<Vec<_>>() }),
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = secrets
                .iter()
                .map(|s| {
                    let until = if s.expires_unix_ms == 0 { "-".into() } else { output::time(s.expires_unix_ms) };
                    vec![s.name.clone(), s.id.clone(), output::time(s.created_unix_ms), until]
                })
                .collect();
            output::table(&["NAME", "VALUE ID", "SET", "RETIRES"], &rows);
        }
    }
    Ok(())
}

fn json(s: &SecretInfo) -> serde_json::Value {
    serde_json::json!({
        "name": s.name, "id": s.id, "set": output::time(s.created_unix_ms),
        "retires": (s.expires_unix_ms > 0).then(|| output::time(s.expires_unix_ms)),
    })
}

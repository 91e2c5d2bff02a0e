//! `wardenctl diff -f FILE`: what applying the file would change, per service.
//! `wardenctl diff --against URL [--against-token-file F]`: how this control plane's
//! services differ from another's (staging against production, say): which exist on one
//! side only, which are the same, and for those that differ, the diff of their current
//! policies (from the other's to this one's).

use std::collections::BTreeMap;

use warden_policy::yaml::parse_file;
use warden_proto::v1::{GetPolicyRequest, ListServicesRequest, PolicyVersion};

use crate::cli::context::{Cli, Failure, Format, Outcome, read_file};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (`-` for stdin).
    #[arg(short = 'f', long = "filename", required_unless_present = "against", conflicts_with = "against")]
    file: Option<String>,
    /// Another control plane's URL: compare every service's current policy with it.
    #[arg(long)]
    against: Option<String>,
    /// The admin token for --against (none is sent otherwise: this one's is not).
    #[arg(long, requires = "against")]
    against_token_file: Option<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    match (&a.file, &a.against) {
        (Some(file), _) => with_file(cli, file).await,
        (None, Some(url)) => against(cli, url, a.against_token_file.as_deref()).await,
        (None, None) => Err(Failure::Usage("diff -f FILE, or diff --against URL".into())),
    }
}

async fn with_file(cli: &Cli, file: &str) -> Outcome {
    let source = read_file(file)?;
    let docs = parse_file(file, &source).map_err(|e| Failure::Refused(e.to_string()))?;
    let mut admin = cli.admin().await?;
    let mut diffs = Vec::new();
    for d in &docs {
        let current = match admin.get_policy(GetPolicyRequest { service: d.policy.service.clone(), version: 0 }).await {
            Ok(v) => Some(v.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(s.into()),
        };
        let (old, old_name) = match &current {
            Some(v) => (v.source_yaml.as_str(), format!("{}@v{}", v.service, v.version)),
            None => ("", "(none)".to_owned()),
        };
        diffs.push((d.policy.service.clone(), output::diff(old, &d.source, &old_name, file)));
    }
    if cli.output != Format::Table {
        let rows: Vec<_> =
            diffs.iter().map(|(s, d)| serde_json::json!({"service": s, "changed": !d.is_empty(), "diff": d})).collect();
        output::structured(cli.output, &serde_json::json!({ "services": rows }));
        return Ok(());
    }
    for (service, d) in diffs {
        if d.is_empty() {
            println!("{}: no changes", output::cell(&service));
        } else {
            print!("{}", output::lines(&d));
        }
    }
    Ok(())
}

/// Every service's current policy on a control plane, by name.
async fn services(cli: &Cli) -> Result<BTreeMap<String, PolicyVersion>, Failure> {
    let current = cli.admin().await?.list_services(ListServicesRequest {}).await?.into_inner().current;
    Ok(current.into_iter().map(|v| (v.service.clone(), v)).collect())
}

async fn against(cli: &Cli, url: &str, token_file: Option<&str>) -> Outcome {
    let token = match token_file {
        Some(f) => Some(read_file(f)?.trim().to_owned()),
        None => None,
    };
    let other =
        Cli { server: url.to_owned(), token, ca_file: cli.ca_file.clone(), output_arg: None, output: cli.output };
    let (here, there) = (services(cli).await?, services(&other).await?);
    let mut names: Vec<&String> = here.keys().chain(there.keys()).collect();
    names.sort();
    names.dedup();
    let rows: Vec<(String, Option<&PolicyVersion>, Option<&PolicyVersion>, String)> = names
        .into_iter()
        .map(|name| {
            let (h, t) = (here.get(name), there.get(name));
            let diff = match (h, t) {
                (Some(h), Some(t)) if h.content_hash != t.content_hash => output::diff(
                    &t.source_yaml,
                    &h.source_yaml,
                    &format!("{name}@v{} ({url})", t.version),
                    &format!("{name}@v{} (here)", h.version),
                ),
                _ => String::new(),
            };
            (name.clone(), h, t, diff)
        })
        .collect();
    let state = |h: Option<&PolicyVersion>, t: Option<&PolicyVersion>| match (h, t) {
        (Some(h), Some(t)) if h.content_hash == t.content_hash => "same",
        (Some(_), Some(_)) => "differs",
        (Some(_), None) => "only_here",
        _ => "only_there",
    };
    if cli.output != Format::Table {
        let out: Vec<_> = rows
            .iter()
            .map(|(name, h, t, diff)| {
                serde_json::json!({"service": name, "state": state(*h, *t), "here_version": h.map(|v| v.version),
                    "there_version": t.map(|v| v.version), "diff": diff})
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "against": url, "services": out }));
        return Ok(());
    }
    let version = |v: Option<&PolicyVersion>| v.map_or("-".to_owned(), |v| format!("v{}", v.version));
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(name, h, t, _)| vec![name.clone(), version(*h), version(*t), state(*h, *t).replace('_', " ")])
        .collect();
    output::table(&["SERVICE", "HERE", &format!("THERE ({url})"), "STATE"], &table);
    for (_, _, _, diff) in rows.iter().filter(|r| !r.3.is_empty()) {
        println!();
        print!("{}", output::lines(diff));
    }
    Ok(())
}

//! `wardenctl diff -f FILE`: what applying the file would change, per service.

use warden_policy::yaml::parse_file;
use warden_proto::v1::GetPolicyRequest;

use crate::cli::context::{Cli, Failure, Format, Outcome, read_file};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: String,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let source = read_file(&a.file)?;
    let docs = parse_file(&a.file, &source).map_err(|e| Failure::Refused(e.to_string()))?;
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
        diffs.push((d.policy.service.clone(), output::diff(old, &d.source, &old_name, &a.file)));
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

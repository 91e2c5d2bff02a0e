//! `wardenctl validate -f FILE`: every check the control plane makes, offline.

use warden_policy::yaml::parse_file;

use crate::cli::context::{Cli, Failure, Format, Outcome, read_file};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: String,
}

pub fn run(cli: &Cli, a: &Args) -> Outcome {
    let source = read_file(&a.file)?;
    let docs = parse_file(&a.file, &source).map_err(|e| Failure::Refused(e.to_string()))?;
    if cli.output != Format::Table {
        let docs: Vec<_> = docs
            .iter()
            .map(|d| {
                serde_json::json!({
                    "service": d.policy.service, "routes": d.policy.routes.len(),
                    "warnings": d.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "valid": true, "documents": docs }));
        return Ok(());
    }
    for d in &docs {
        for w in &d.warnings {
            eprintln!("warning: {}", output::lines(&w.to_string()));
        }
        println!("{}: valid ({} routes)", output::cell(&d.policy.service), d.policy.routes.len());
    }
    Ok(())
}

//! `wardenctl fallback export SERVICE -o FILE`: the service's current snapshot and API key
//! hashes, signed by the control plane, for sidecars started with `--fallback-snapshot
//! FILE --fallback-key PUBKEY` while no replica answers. Written whole or not at all.

use std::io::Write;
use std::path::Path;

use warden_proto::v1::ExportFallbackRequest;

use crate::cli::context::{Cli, Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: FallbackCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FallbackCommand {
    /// Write a service's signed bundle to the file given by -o (`-o -`: stdout).
    Export { service: String },
}

/// `file`: the `-o` of the command line.
pub async fn run(cli: &Cli, a: &Args, file: Option<String>) -> Outcome {
    let FallbackCommand::Export { service } = &a.command;
    let file = file.ok_or_else(|| Failure::Usage("fallback export needs -o FILE (or -o - for stdout)".into()))?;
    if ["table", "json", "yaml"].contains(&file.as_str()) {
        return Err(Failure::Usage(format!(
            "-o names the file to write here, not a format: -o ./{file} to mean a file"
        )));
    }
    let export =
        cli.admin().await?.export_fallback(ExportFallbackRequest { service: service.clone() }).await?.into_inner();
    let summary = format!(
        "service {service} v{}, API keys: {}, signed by key {}",
        export.version, export.keys, export.public_key
    );
    if file == "-" {
        std::io::stdout().write_all(&export.bundle).map_err(|e| Failure::Refused(format!("writing stdout: {e}")))?;
        eprintln!("{summary}");
        return Ok(());
    }
    write_whole(Path::new(&file), &export.bundle).map_err(|e| Failure::Refused(format!("writing {file}: {e}")))?;
    println!("wrote {file}: {summary}");
    Ok(())
}

/// Writes beside the target, then renames: a reader (a ConfigMap being built) never sees
/// half a bundle.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

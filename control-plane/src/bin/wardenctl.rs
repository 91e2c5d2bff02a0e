//! `wardenctl`: the one CLI. Parses arguments, runs the command, maps failures to the
//! SPEC's exit codes (clap itself exits 2 on usage errors).

use std::process::ExitCode;

use clap::Parser;
use warden_control_plane::cli::Wardenctl;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let wardenctl = Wardenctl::parse();
    match wardenctl.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // Errors quote what others wrote (server messages, policy excerpts).
            eprintln!("error: {}", warden_policy::text::escape_lines(f.message()));
            ExitCode::from(f.exit_code())
        }
    }
}

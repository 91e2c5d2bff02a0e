//! The lenient WSGI app (`tools/lenient_app.py`, Python's own wsgiref): what an app that
//! decodes, merges, resolves and folds would make of the request Warden forwarded. The
//! differential tests compare its routing with Warden's.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::process::{Proc, field};

pub struct LenientApp {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl LenientApp {
    /// Starts the app with the routes (JSON, in policy order) it should route by.
    pub async fn start(routes: &serde_json::Value, fold_case: bool) -> LenientApp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/lenient_app.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(routes.to_string());
        if fold_case {
            cmd.arg("--fold-case");
        }
        let proc = Proc::spawn_command("lenient_app.py", cmd);
        let line = proc.wait_for("listening port=", Duration::from_secs(10)).await;
        let port: u16 = field(&line, "port").and_then(|p| p.parse().ok()).expect("port in the app's first line");
        LenientApp { proc, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// What the app answered so far, one JSON object per request.
    pub fn answered(&self) -> Vec<serde_json::Value> {
        self.proc.lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

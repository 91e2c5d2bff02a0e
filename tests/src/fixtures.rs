//! What tests set up on disk or get from outside Warden: policy files, and credentials
//! signed by Python's PyJWT and hmac rather than by Warden's own code.

/// Runs `tests/tools/sign.py` (PyJWT and Python's hmac: credentials made without any of
/// Warden's code) and returns what it printed, trimmed.
pub fn sign(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/sign.py");
    let out = std::process::Command::new("python3").arg(script).args(args).output().expect("run python3");
    assert!(
        out.status.success(),
        "sign.py {args:?} failed (pip install 'pyjwt[crypto]'?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port on 127.0.0.1 nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Writes a policy file into `dir` and returns its path as a string.
pub fn write_policy(dir: &std::path::Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write policy");
    path.to_string_lossy().into_owned()
}

//! Compiles `warden/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["warden/v1/policy.proto", "warden/v1/sidecar.proto", "warden/v1/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Encoded once per version, shared (not copied) by every stream it goes to.
        .bytes(".warden.v1.SnapshotPush")
        .compile_fds(fds)?;
    Ok(())
}

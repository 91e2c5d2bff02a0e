//! Compiles `warden/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["warden/v1/policy.proto", "warden/v1/sidecar.proto", "warden/v1/admin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    // The gRPC clients and servers only with the `grpc` feature: the policy crate needs
    // the messages alone, and must not link tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // Encoded once per version, shared (not copied) by every stream it goes to.
        .bytes(".warden.v1.SnapshotPush")
        .compile_fds(fds)?;
    Ok(())
}

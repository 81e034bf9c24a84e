//! Compiles the floor's relay contract (`proto/relay/v1/relay.proto`) with protox (pure Rust, no
//! `protoc`), like the root crate's build script.

const PROTO_ROOT: &str = "proto";
const RELAY_PROTO: &str = "proto/relay/v1/relay.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed={RELAY_PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([RELAY_PROTO], [PROTO_ROOT])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}

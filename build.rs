//! Compiles `proto/roomhooks/v1/*.proto` with protox (pure Rust, no `protoc`) into tonic/prost
//! code, and writes the encoded FileDescriptorSet to OUT_DIR for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_DIR: &str = "proto/roomhooks/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files: Vec<PathBuf> = fs::read_dir(PROTO_DIR)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("roomhooks_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // `AppRuntime.Connect` would clash with the transport constructor `connect(dst)`;
        // clients are built from a `tonic::transport::Channel` instead.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}

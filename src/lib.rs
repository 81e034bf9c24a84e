//! The roomhooks wire contract: package `roomhooks.v1`, generated from `proto/` at build time.
//!
//! Clients are generated without the `connect(dst)` constructor (the `AppRuntime.Connect` RPC
//! would clash with it): build them from a [`tonic::transport::Channel`].

/// Messages and services of `roomhooks.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("roomhooks.v1");
}

/// The encoded FileDescriptorSet of `roomhooks.v1` and its imports, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/roomhooks_descriptor.bin"));

//! The floor's wire contract (package `relay.v1`), generated from `bench/proto/` at build time.

#![allow(missing_docs, clippy::all)]

tonic::include_proto!("relay.v1");

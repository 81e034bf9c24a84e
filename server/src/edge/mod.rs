//! The edge: the gRPC services (`RoomHooks` for backends, `AppRuntime` for apps, `Admin` for
//! operators), authentication, request validation and the call context read from metadata.
//! It owns every `tonic::Status` the sidecar builds; it may use everything below it
//! (dispatch, apps, post, lifecycle, ops).

pub mod admin;
pub mod auth;
pub mod connection;
pub mod deadline;
pub mod recover;
pub mod requests;
pub mod runtime_server;
pub mod service;
pub mod validate;

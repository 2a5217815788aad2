//! The gRPC adapter and the HTTP scan page.

pub mod grpc;
pub mod http;

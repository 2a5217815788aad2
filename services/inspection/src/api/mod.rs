//! The gRPC and HTTP adapters.

pub mod grpc;
pub mod http;

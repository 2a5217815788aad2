//! The gRPC and HTTP/JSON adapters: request in, gateway call, answer out.

pub mod grpc;
pub mod http;

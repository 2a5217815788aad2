//! The license service's adapters: gRPC and public HTTP documents.

pub mod grpc;
pub mod http;

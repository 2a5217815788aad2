//! Thin adapters: gRPC ([`grpc`]) and HTTP ([`http`]) over [`crate::service::Identity`].

pub mod grpc;
pub mod http;

//! Thin adapters: gRPC ([`grpc`]) and HTTP ([`http`], with the token endpoint [`token`]) over [`crate::service::Identity`].

pub mod grpc;
pub mod http;
pub mod token;

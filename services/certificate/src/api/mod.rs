//! The adapters: gRPC (`CertificateService`) and the public HTTP status lists.

pub mod grpc;
pub mod http;

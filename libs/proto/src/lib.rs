//! Generated protobuf and gRPC code for every credmesh package.
//!
//! This is the one crate that runs code generation, so the workspace compiles each
//! `.proto` once and uses one version of `tonic` and `prost` (re-exported here).
//! It also carries the encoded file descriptor set for gRPC server reflection and
//! the helpers that build `tonic::Status` values with google.rpc rich details, so
//! every service answers errors in the same shape.
//!
//! # Layout
//! - [`credential::v1`], [`identity::v1`], [`license::v1`], [`inspection::v1`]: generated messages, clients
//!   and servers.
//! - [`status`]: rich error details (`ErrorInfo`, `BadRequest`) in one place.
//! - [`FILE_DESCRIPTOR_SET`]: every credmesh service, for reflection.

pub use prost;
pub use prost_types;
pub use tonic;
pub use tonic_types;

pub mod status;

/// The encoded `FileDescriptorSet` of every credmesh `.proto`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/credmesh_descriptor.bin"));

/// Shared credential formats: envelopes, credentials, status and trust lists.
pub mod credential {
    /// Version 1 of the credential formats.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.credential.v1.rs"));
    }
}

/// The identity and trust service.
pub mod identity {
    /// Version 1 of the identity service.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.identity.v1.rs"));
    }
}

/// The electronic business license service.
pub mod license {
    /// Version 1 of the license service.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.license.v1.rs"));
    }
}

/// The enterprise-code service.
pub mod entcode {
    /// Version 1 of the enterprise-code service.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.entcode.v1.rs"));
    }
}

/// The inspection code service.
pub mod inspection {
    /// Version 1 of the inspection code service.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.inspection.v1.rs"));
    }
}

/// The partner-facing verify gateway.
pub mod verify {
    /// Version 1 of the verify gateway.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.verify.v1.rs"));
    }
}

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
//! - [`FILE_DESCRIPTOR_SET`]: every credmesh service, for reflection;
//!   [`is_published_method`] asks it whether a method exists.

pub use prost;
pub use prost_types;
pub use tonic;
pub use tonic_types;

pub mod status;

/// The encoded `FileDescriptorSet` of every credmesh `.proto`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/credmesh_descriptor.bin"));

/// Whether `path` (`/package.Service/Method`) is a method of a published credmesh
/// service, so a server can tell a call to a method that does not exist (answered
/// `UNIMPLEMENTED`) from one that exists but is closed to the caller.
pub fn is_published_method(path: &str) -> bool {
    use std::{collections::HashSet, sync::OnceLock};
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS
        .get_or_init(|| {
            let set: prost_types::FileDescriptorSet =
                prost::Message::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
            set.file
                .iter()
                .flat_map(|file| {
                    file.service.iter().flat_map(move |service| {
                        service.method.iter().map(move |method| {
                            format!("/{}.{}/{}", file.package(), service.name(), method.name())
                        })
                    })
                })
                .collect()
        })
        .contains(path)
}

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

/// The e-certificate service.
pub mod certificate {
    /// Version 1 of the certificate service.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        include!(concat!(env!("OUT_DIR"), "/credmesh.certificate.v1.rs"));
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

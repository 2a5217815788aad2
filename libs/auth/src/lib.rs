//! Access tokens for credmesh: issued by the identity service, validated locally by
//! every other service.
//!
//! The identity service signs short-lived EdDSA JWTs ([`TokenSigner`]) and publishes its
//! keys as a JWKS. Every service validates tokens with cached keys ([`TokenValidator`]),
//! and an [`AuthLayer`] in front of its tonic routes turns a valid token into a
//! [`Principal`] in the request extensions and enforces an [`AccessPolicy`] that fails
//! closed: a method without an entry is refused. Services calling other services keep a
//! token with a [`TokenSource`] and attach it with a [`BearerLayer`].
//!
//! Keys and tokens are never logged; logs carry key ids and client ids at most.
//!
//! # Layout
//! - [`error`]: [`AuthError`] and its single mapping to `tonic::Status`.
//! - [`claims`]: [`AccessClaims`], [`Principal`], [`PrincipalKind`].
//! - [`jwk`]: [`Jwk`], [`Jwks`] (RFC 7517 / RFC 8037 OKP).
//! - [`signer`]: [`TokenSigner`], used by the identity service.
//! - [`source`]: [`JwksSource`]: [`GrpcJwksSource`] (identity's `GetJwks`), [`StaticJwks`].
//! - [`validator`]: [`TokenValidator`], [`ValidatorConfig`].
//! - [`policy`]: [`Access`], [`AccessPolicy`].
//! - [`layer`]: [`AuthLayer`], the server-side tower layer.
//! - [`client`]: client assertions, [`TokenSource`], [`BearerLayer`].

pub mod claims;
pub mod client;
pub mod error;
pub mod jwk;
pub mod layer;
pub mod policy;
pub mod signer;
pub mod source;
pub mod validator;

pub use claims::{AccessClaims, Principal, PrincipalKind};
pub use client::{
    ASSERTION_AUDIENCE, AssertionClaims, BearerLayer, BearerService, TokenIssuer, TokenSource,
    client_assertion, verify_client_assertion,
};
pub use error::AuthError;
pub use jwk::{Jwk, Jwks};
pub use layer::{AuthLayer, AuthService, bearer_token};
pub use policy::{Access, AccessPolicy};
pub use signer::TokenSigner;
pub use source::{GrpcJwksSource, JwksSource, StaticJwks};
pub use validator::{Clock, TokenValidator, ValidatorConfig, system_clock};

/// The `iss` of access tokens issued by a region's identity service:
/// `credmesh-identity:<region>`.
pub fn issuer_for_region(region: &str) -> String {
    format!("credmesh-identity:{region}")
}

#[cfg(test)]
pub(crate) mod test_support;

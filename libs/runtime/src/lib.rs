//! Serving credmesh services: one place that knows how a service is put on the wire.
//!
//! Every service crate produces [`ServiceParts`] (its tonic services, its HTTP routes,
//! its access policy and its readiness checks); [`Server`] serves one or many of them
//! from an already-bound listener: `credmesh serve <service>` mounts one, `credmesh dev`
//! mounts all. gRPC and HTTP share the port (HTTP/2 prior knowledge for gRPC, HTTP/1.1
//! or h2 for the rest). Every gRPC call passes the same stack, outermost first:
//! trace context → RED metrics → limits (concurrency, deadline) → authentication and
//! authorisation → per-client rate limit → status normalisation → the service. Each
//! service's HTTP routes pass the same per-client rate limit, inside the same trace
//! context and RED metrics, labelled by the route template matched.
//!
//! # Layout
//! - [`server`]: [`Server`], [`ServiceParts`], [`ServerConfig`], health and reflection.
//! - [`client`]: [`connect`], the traced channel to another service.
//! - [`limits`]: concurrency and deadline limits answering proper gRPC statuses.
//! - [`rate`]: per-client token buckets, [`RateLimit`] and the layers applying them.
//! - [`normalize`]: tonic's own refusals (bad protobuf, oversize) given proper codes.
//! - [`issuer_key`]: an issuing service's signing key, registered with identity.
//! - [`trust`]: the region's trust list, fetched from identity and checked.
//! - [`license`]: whether an enterprise's license is in force, verified like a verifier.
//! - [`status_http`]: the HTTP route every issuing service publishes its status lists on.
//! - [`http_cache`]: public signed documents over HTTP with `ETag`, `304` and `Vary`.
//! - [`partners`]: the federation's partner file, read by identity and verify.
//! - [`clock`]: the clock domain code takes, so tests move time instead of sleeping.
//! - [`coalesce`]: the work of concurrent callers done together, in batches.
//! - [`shutdown`]: the process shutdown signal.

pub mod client;
pub mod clock;
pub mod coalesce;
pub mod conn_io;
pub mod http_cache;
pub mod issuer_key;
pub mod license;
pub mod limits;
pub mod normalize;
pub mod partners;
pub mod rate;
pub mod server;
pub mod shutdown;
pub mod status_http;
pub mod status_lists;
pub mod tls;
pub mod trust;

pub use client::{ClientOptions, TracedChannel, connect};
pub use clock::{Clock, ManualClock, SystemClock};
pub use rate::{RateCharge, RateLimit, RateLimited};
pub use server::{Readiness, Server, ServerConfig, ServiceParts};

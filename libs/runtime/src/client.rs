//! Channels to other credmesh services, built one way: lazily connecting (a service starts
//! whether or not its dependencies are up), with connect and call timeouts, and traced —
//! every call gets a `grpc.client` span, child of the current span, and sends the trace
//! context, so the callee's server span joins the caller's trace.
//!
//! ```ignore
//! let identity = credmesh_runtime::connect(&config.identity_url, &ClientOptions::default())?;
//! let mut client = IdentityServiceClient::new(identity);
//! ```
//!
//! Library clients that take a plain [`Channel`] (`credmesh_auth::TokenSource::grpc`,
//! `credmesh_auth::GrpcJwksSource`) wrap it in the same layer themselves; give them
//! [`channel`].

use std::time::Duration;

use anyhow::Context as _;
pub use credmesh_telemetry::propagation::{TracedChannel, traced};
use tonic::transport::Channel;

use crate::tls::ClientTls;

/// Timeouts of a channel to another service.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// How long establishing the connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long one call may take, unless the call sets a shorter deadline (default 30 s).
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A traced, lazily connecting channel to the service at `url` (`http://host:port`, or
/// `https://host:port` for TLS with the process's [`ClientTls`]).
pub fn connect(url: &str, options: &ClientOptions) -> anyhow::Result<TracedChannel> {
    Ok(traced(channel(url, options)?))
}

/// A lazily connecting channel, with the default options, to another credmesh service
/// at `url` (`CREDMESH_IDENTITY_URL`, `CREDMESH_LICENSE_URL`, …): a service starts
/// whether or not the services it calls are up yet.
pub fn service_channel(url: &str) -> anyhow::Result<Channel> {
    channel(url, &ClientOptions::default()).with_context(|| {
        format!("{url:?} is not a usable service URL (http://host:port or https://host:port)")
    })
}

/// The untraced channel under [`connect`], for clients that add the trace layer
/// themselves. An `https://` URL is verified against the installed [`ClientTls`] (the
/// system's roots plus `CREDMESH_TLS_CA_FILE`), which also shows the process's own
/// certificate to servers that require one.
pub fn channel(url: &str, options: &ClientOptions) -> anyhow::Result<Channel> {
    channel_with(url, options, ClientTls::installed())
}

/// [`channel`] with explicit TLS settings for `https://` URLs.
pub fn channel_with(
    url: &str,
    options: &ClientOptions,
    tls: &ClientTls,
) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(url.to_string())
        .with_context(|| format!("'{url}' is not a URL"))?
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout);
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        endpoint = endpoint
            .tls_config(tls.tonic().timeout(options.connect_timeout))
            .with_context(|| format!("TLS settings for {url}"))?;
    }
    Ok(endpoint.connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_is_not_one_is_refused_with_the_url_named() {
        let error = connect("not a url", &ClientOptions::default()).expect_err("refused");
        assert!(error.to_string().contains("not a url"), "{error}");
    }

    #[tokio::test]
    async fn a_channel_is_made_without_the_service_being_up() {
        // Nothing listens on port 9: connecting is lazy, so this succeeds.
        connect("http://127.0.0.1:9", &ClientOptions::default()).expect("lazy channel");
    }
}

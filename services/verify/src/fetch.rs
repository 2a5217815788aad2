//! A small HTTP/1.1 GET client on hyper for status lists.
//!
//! One connection per request: status lists are fetched in the background every few
//! seconds, not on the hot path, so pooling buys little. Only `http://` is supported;
//! TLS to partner endpoints (rustls with pinned roots) is left for later and refused
//! with a clear error rather than silently downgraded.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest body accepted (a status list of 131,072 entries is about 16 KB raw).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// GETs `url` with `accept`, within `timeout`; answers the status and the body.
pub async fn get(
    url: &str,
    accept: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    tokio::time::timeout(timeout, get_inner(url, accept))
        .await
        .with_context(|| format!("no answer from {url} within {timeout:?}"))?
}

async fn get_inner(url: &str, accept: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("'{url}' is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// status URLs are supported for now (TLS is left for later): {url}");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .context("the URL has no authority")?
        .to_string();
    let stream = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true).ok();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("http handshake")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, accept)
        .header(header::USER_AGENT, "credmesh-verify")
        .body(Empty::<Bytes>::new())?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

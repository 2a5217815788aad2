//! gRPC in tests: requests carrying a bearer token, assertions on a refusal's code and
//! stable reason, and raw calls that send any bytes as a request body, to test how a
//! server answers input no generated client would produce (truncated or garbage
//! protobuf).

use bytes::{Buf as _, BufMut as _};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// `msg` as a request carrying `token` as its bearer token.
pub fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("a token is header-safe"),
    );
    req
}

/// Asserts that a call failed with `code` and the stable `reason` of its error details,
/// with a message a person can read; returns the status for further checks.
#[track_caller]
pub fn assert_status(
    result: Result<impl std::fmt::Debug, Status>,
    code: tonic::Code,
    reason: &str,
) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        credmesh_proto::status::reason(&status).as_deref(),
        Some(reason),
        "{status:?}"
    );
    assert!(
        !status.message().is_empty(),
        "a readable message is expected"
    );
    status
}

/// A codec passing bytes through untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// The encoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

/// The decoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Calls the unary method at `path` (`/package.Service/Method`) with `body` as the
/// request message bytes and `metadata` headers; returns the response message bytes.
pub async fn raw_unary(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
    metadata: &[(&'static str, String)],
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(body);
    for (k, v) in metadata {
        let value = v
            .parse()
            .map_err(|_| Status::invalid_argument("metadata value"))?;
        req.metadata_mut().insert(*k, value);
    }
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

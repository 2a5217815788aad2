//! Public, cacheable HTTP answers: the signed documents every service publishes (status
//! lists, key sets, trust lists, trust bundles, dispute notices), which relying parties,
//! partner regions and the caches between them fetch over and over.
//!
//! Each answer carries a strong `ETag` (a digest of its bytes: a document is signed again
//! only when it changed or its refresh interval passed, so the bytes are stable in
//! between) and its `Cache-Control`. A GET whose `If-None-Match` names the current tag
//! is answered `304 Not Modified` with no body. A route that answers one URL in several
//! representations by the `Accept` header says so with `Vary: Accept`, so that a shared
//! cache never hands the protobuf form to a client that asked for the VC-JWT.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use sha2::{Digest as _, Sha256};

/// How an answer's URL chooses its representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiated {
    /// One representation only.
    No,
    /// By the request's `Accept` header (`Vary: Accept`).
    ByAccept,
}

/// `body` as `content_type` with `cache_control`, or `304 Not Modified` when `request`
/// already holds it (see the module docs).
pub fn public(
    request: &HeaderMap,
    content_type: &'static str,
    cache_control: &'static str,
    negotiated: Negotiated,
    body: impl Into<Vec<u8>>,
) -> Response {
    let body = body.into();
    let tag = entity_tag(&body);
    let mut response = if holds(request, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Body::from(body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, tag);
    }
    if negotiated == Negotiated::ByAccept {
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
    }
    response
}

/// The strong entity tag of `body`: 128 bits of its SHA-256, quoted.
fn entity_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    credmesh_credential::push_hex(&mut tag, &digest[..16]);
    tag.push('"');
    tag
}

/// Whether `If-None-Match` names `tag` (or is `*`). Weak comparison, as RFC 9110 asks
/// for this header: a `W/` prefix is ignored.
fn holds(request: &HeaderMap, tag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(if_none_match: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(v) = if_none_match {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn header_of(response: &Response, name: header::HeaderName) -> Option<String> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn an_answer_carries_its_tag_and_a_request_holding_it_gets_304() {
        let first = public(
            &request(None),
            "application/vc+jwt",
            "public, max-age=30",
            Negotiated::ByAccept,
            b"a.b.c".to_vec(),
        );
        assert_eq!(first.status(), StatusCode::OK);
        let tag = header_of(&first, header::ETAG).unwrap();
        assert!(
            tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34,
            "{tag}"
        );
        assert_eq!(header_of(&first, header::VARY).as_deref(), Some("accept"));
        assert_eq!(
            header_of(&first, header::CONTENT_TYPE).as_deref(),
            Some("application/vc+jwt")
        );
        let body = axum::body::to_bytes(first.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"a.b.c");

        for held in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".into(),
        ] {
            let again = public(
                &request(Some(&held)),
                "application/vc+jwt",
                "public, max-age=30",
                Negotiated::ByAccept,
                b"a.b.c".to_vec(),
            );
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{held}");
            assert_eq!(
                header_of(&again, header::ETAG).as_deref(),
                Some(tag.as_str())
            );
            assert_eq!(
                header_of(&again, header::CACHE_CONTROL).as_deref(),
                Some("public, max-age=30")
            );
            let body = axum::body::to_bytes(again.into_body(), 1024).await.unwrap();
            assert!(body.is_empty());
        }
    }

    #[test]
    fn a_changed_document_is_sent_whole_under_a_new_tag() {
        let old = public(&request(None), "t", "c", Negotiated::No, b"v1".to_vec());
        let old_tag = header_of(&old, header::ETAG).unwrap();
        assert_eq!(header_of(&old, header::VARY), None);
        let new = public(
            &request(Some(&old_tag)),
            "t",
            "c",
            Negotiated::No,
            b"v2".to_vec(),
        );
        assert_eq!(new.status(), StatusCode::OK);
        assert_ne!(header_of(&new, header::ETAG).unwrap(), old_tag);
    }
}

//! Small facts about gRPC over HTTP/2 that both layers need: which requests are gRPC, how the
//! path names the method, where the status code lives and what it is called.

use http::{HeaderMap, StatusCode};

/// gRPC status `UNKNOWN`: what a call that ended without a status is taken to have returned.
pub(crate) const UNKNOWN: i32 = 2;
/// gRPC status `CANCELLED`: what a call whose response was dropped half-way is counted as.
pub(crate) const CANCELLED: i32 = 1;

/// Canonical gRPC status names, indexed by code (the gRPC spec's `statuscodes.md` spelling).
pub(crate) const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Index into [`CODE_NAMES`]; codes outside the spec count as `UNKNOWN`.
pub(crate) fn code_index(code: i32) -> usize {
    usize::try_from(code)
        .ok()
        .filter(|&i| i < CODE_NAMES.len())
        .unwrap_or(UNKNOWN as usize)
}

/// A gRPC request is one whose content type is `application/grpc` or `application/grpc+…`
/// (grpc-web and plain HTTP requests are not).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| {
            let value = value.as_bytes();
            value.starts_with(b"application/grpc") && !value.starts_with(b"application/grpc-web")
        })
}

/// Splits a gRPC path `/package.Service/Method` into `("package.Service", "Method")`.
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

/// The `grpc-status` of a header or trailer map, if it has a well-formed one.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let bytes = headers.get("grpc-status")?.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 {
        return None;
    }
    bytes.iter().try_fold(0i32, |code, &b| {
        b.is_ascii_digit().then(|| code * 10 + i32::from(b - b'0'))
    })
}

/// The gRPC code a client derives from an HTTP status when a response has no `grpc-status`
/// (the mapping in the gRPC spec's `http-grpc-status-mapping.md`).
pub(crate) fn code_from_http(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => UNKNOWN,
    }
}

/// Server spans are errors only for codes that mean the server failed (OpenTelemetry's gRPC
/// semantic conventions); a client's `NOT_FOUND` or `INVALID_ARGUMENT` is not the server's fault.
pub(crate) fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_grpc_path_splits_into_service_and_method() {
        assert_eq!(
            split_path("/credmesh.license.v1.LicenseService/IssueLicense"),
            Some(("credmesh.license.v1.LicenseService", "IssueLicense"))
        );
    }

    #[test]
    fn paths_that_are_not_service_slash_method_do_not_split() {
        for path in [
            "/",
            "/metrics",
            "//Method",
            "/Service/",
            "/a/b/c",
            "no-slash",
        ] {
            assert_eq!(split_path(path), None, "{path}");
        }
    }

    #[test]
    fn grpc_status_is_read_only_when_it_is_a_small_decimal() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(grpc_status(&headers), Some(0));
        headers.insert("grpc-status", HeaderValue::from_static("16"));
        assert_eq!(grpc_status(&headers), Some(16));
        headers.insert("grpc-status", HeaderValue::from_static("x1"));
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("1234"));
        assert_eq!(grpc_status(&headers), None);
    }

    #[test]
    fn codes_outside_the_spec_are_named_unknown() {
        assert_eq!(CODE_NAMES[code_index(0)], "OK");
        assert_eq!(CODE_NAMES[code_index(16)], "UNAUTHENTICATED");
        assert_eq!(CODE_NAMES[code_index(17)], "UNKNOWN");
        assert_eq!(CODE_NAMES[code_index(-1)], "UNKNOWN");
    }

    #[test]
    fn grpc_web_and_json_requests_are_not_grpc() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        for (content_type, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            assert_eq!(is_grpc(&headers), grpc, "{content_type}");
        }
    }
}

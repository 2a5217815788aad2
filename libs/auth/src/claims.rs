//! What an access token says and who the caller is once it has been validated.

use credmesh_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The kind of party a client is; it bounds the scopes the identity service grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A credmesh service calling another one.
    Service,
    /// A partner region's system.
    Partner,
    /// A platform operator.
    Operator,
    /// An issuing or enforcement department.
    Department,
    /// An inspector of an enforcement department.
    Inspector,
    /// A business entity, identified by its unified social credit code.
    Enterprise,
}

impl PrincipalKind {
    /// Every kind, in proto order.
    pub const ALL: [PrincipalKind; 6] = [
        PrincipalKind::Service,
        PrincipalKind::Partner,
        PrincipalKind::Operator,
        PrincipalKind::Department,
        PrincipalKind::Inspector,
        PrincipalKind::Enterprise,
    ];

    /// The name used in tokens, configuration and logs: `"service"`, `"partner"`, …
    pub fn as_str(&self) -> &'static str {
        match self {
            PrincipalKind::Service => "service",
            PrincipalKind::Partner => "partner",
            PrincipalKind::Operator => "operator",
            PrincipalKind::Department => "department",
            PrincipalKind::Inspector => "inspector",
            PrincipalKind::Enterprise => "enterprise",
        }
    }

    /// The kind named by [`as_str`](Self::as_str), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind of a `credmesh.identity.v1.PrincipalKind` value; `None` for
    /// `UNSPECIFIED` and unknown numbers.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::PrincipalKind::try_from(value).ok()? {
            pb::PrincipalKind::Unspecified => None,
            pb::PrincipalKind::Service => Some(PrincipalKind::Service),
            pb::PrincipalKind::Partner => Some(PrincipalKind::Partner),
            pb::PrincipalKind::Operator => Some(PrincipalKind::Operator),
            pb::PrincipalKind::Department => Some(PrincipalKind::Department),
            pb::PrincipalKind::Inspector => Some(PrincipalKind::Inspector),
            pb::PrincipalKind::Enterprise => Some(PrincipalKind::Enterprise),
        }
    }

    /// The `credmesh.identity.v1.PrincipalKind` number of this kind.
    pub fn to_proto(&self) -> i32 {
        let kind = match self {
            PrincipalKind::Service => pb::PrincipalKind::Service,
            PrincipalKind::Partner => pb::PrincipalKind::Partner,
            PrincipalKind::Operator => pb::PrincipalKind::Operator,
            PrincipalKind::Department => pb::PrincipalKind::Department,
            PrincipalKind::Inspector => pb::PrincipalKind::Inspector,
            PrincipalKind::Enterprise => pb::PrincipalKind::Enterprise,
        };
        kind as i32
    }
}

impl std::fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// JWT claims of a credmesh access token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    /// The issuing identity service, `credmesh-identity:<region>`.
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// The service the token is for (`license`, …) or `credmesh` for every service.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Unique token id, for revocation.
    pub jti: String,
    /// Granted scopes, space separated (RFC 8693 style).
    pub scope: String,
    /// The kind of party the client is.
    pub kind: PrincipalKind,
    /// The organisation the client acts for (a unified social credit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The region of the issuing identity service.
    pub region: String,
    /// An inspector's law-enforcement certificate number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
}

/// Who is calling, as established by a validated token; the auth layer puts it in the
/// request extensions as an `Arc<Principal>`, and handlers read it with
/// [`Principal::from_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The client id (`sub`).
    pub client_id: String,
    /// The kind of party.
    pub kind: PrincipalKind,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The organisation the client acts for.
    pub organization: Option<String>,
    /// The region whose identity service issued the token.
    pub region: String,
    /// The token id (`jti`), for audit logs.
    pub token_id: String,
    /// Token expiry, Unix seconds.
    pub expires_at: i64,
    /// An inspector's law-enforcement certificate number.
    pub enforcement_certificate: Option<String>,
}

impl Principal {
    /// Whether the token granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `PERMISSION_DENIED` (`AUTH_SCOPE_MISSING`) unless the token granted `scope`.
    ///
    /// For checks inside a handler that depend on the request (the access policy has
    /// already checked what depends on the method alone).
    #[allow(clippy::result_large_err)] // tonic::Status is what handlers return
    pub fn require_scope(&self, scope: &str) -> Result<(), tonic::Status> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope.to_owned()).to_status())
        }
    }

    /// The principal the [`AuthLayer`](crate::AuthLayer) attached to this request;
    /// `UNAUTHENTICATED` (`AUTH_TOKEN_MISSING`) if there is none, as on a public method
    /// called without a token.
    #[allow(clippy::result_large_err)] // tonic::Status is what handlers return
    pub fn from_request<T>(req: &tonic::Request<T>) -> Result<&Principal, tonic::Status> {
        req.extensions()
            .get::<std::sync::Arc<Principal>>()
            .map(std::sync::Arc::as_ref)
            .ok_or_else(|| AuthError::MissingToken.to_status())
    }
}

impl From<AccessClaims> for Principal {
    fn from(claims: AccessClaims) -> Self {
        Principal {
            client_id: claims.sub,
            kind: claims.kind,
            scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
            organization: claims.org,
            region: claims.region,
            token_id: claims.jti,
            expires_at: claims.exp,
            enforcement_certificate: claims.cert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_kind_names_and_proto_numbers_round_trip() {
        for kind in PrincipalKind::ALL {
            assert_eq!(PrincipalKind::parse(kind.as_str()), Some(kind));
            assert_eq!(PrincipalKind::from_proto(kind.to_proto()), Some(kind));
        }
        assert_eq!(PrincipalKind::Service.to_proto(), 1);
        assert_eq!(PrincipalKind::Enterprise.to_proto(), 6);
        assert_eq!(PrincipalKind::from_proto(0), None);
        assert_eq!(PrincipalKind::from_proto(99), None);
        assert_eq!(PrincipalKind::parse("Service"), None);
    }

    #[test]
    fn principal_kind_serialises_as_its_lowercase_name() {
        let json = serde_json::to_string(&PrincipalKind::Inspector).unwrap();
        assert_eq!(json, "\"inspector\"");
    }

    #[test]
    fn principal_scopes_come_from_the_space_separated_scope_claim() {
        let claims = AccessClaims {
            iss: "credmesh-identity:sh".into(),
            sub: "svc-license".into(),
            aud: "credmesh".into(),
            exp: 200,
            iat: 100,
            nbf: 100,
            jti: "j1".into(),
            scope: "license.read  license.write".into(),
            kind: PrincipalKind::Service,
            org: None,
            region: "sh".into(),
            cert: None,
        };
        let principal = Principal::from(claims);
        assert_eq!(principal.scopes, ["license.read", "license.write"]);
        assert!(principal.has_scope("license.write"));
        assert!(!principal.has_scope("license"));
        assert!(principal.require_scope("license.read").is_ok());
        let denied = principal.require_scope("identity.admin").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn a_request_without_a_principal_is_unauthenticated() {
        let req = tonic::Request::new(());
        let status = Principal::from_request(&req).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}

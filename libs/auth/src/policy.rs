//! Which RPCs need what.

use std::collections::BTreeMap;

use crate::{AuthError, Principal};

/// What a caller needs to call a method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token (health, reflection, public documents).
    Public,
    /// Any caller with a valid token.
    Authenticated,
    /// A valid token granting this scope.
    Scope(&'static str),
    /// A valid token granting at least one of these scopes.
    AnyScope(&'static [&'static str]),
}

impl Access {
    /// Whether `principal` satisfies this rule; `MissingScope` names what was needed.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        match self {
            Access::Public | Access::Authenticated => Ok(()),
            Access::Scope(scope) if principal.has_scope(scope) => Ok(()),
            Access::Scope(scope) => Err(AuthError::MissingScope((*scope).to_owned())),
            Access::AnyScope(scopes) if scopes.iter().any(|s| principal.has_scope(s)) => Ok(()),
            Access::AnyScope(scopes) => Err(AuthError::MissingScope(scopes.join(" or "))),
        }
    }
}

/// Access rules by full gRPC method path (`/credmesh.license.v1.LicenseService/Issue`)
/// with per-service defaults (`/credmesh.license.v1.LicenseService/`).
///
/// Paths with neither a rule nor a service default are denied, so a new RPC without an
/// entry is refused, never silently public.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    methods: BTreeMap<String, Access>,
    services: BTreeMap<String, Access>,
}

/// Services every server exposes to anyone: health checking and both reflection versions.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

impl AccessPolicy {
    /// A policy where only health checking and server reflection are public.
    pub fn new() -> Self {
        PUBLIC_SERVICES
            .into_iter()
            .fold(AccessPolicy::default(), |policy, service| {
                policy.service_default(service, Access::Public)
            })
    }

    /// Sets the rule of one method, `/package.Service/Method` (the leading `/` may be
    /// left out). A method rule wins over its service's default.
    pub fn rule(mut self, method_path: &str, access: Access) -> Self {
        let path = if method_path.starts_with('/') {
            method_path.to_owned()
        } else {
            format!("/{method_path}")
        };
        self.methods.insert(path, access);
        self
    }

    /// Sets the rule of every method of a service without its own rule. The service is
    /// named `package.Service`, with or without surrounding `/`.
    pub fn service_default(mut self, service_path_prefix: &str, access: Access) -> Self {
        let service = service_path_prefix.trim_matches('/');
        self.services.insert(format!("/{service}/"), access);
        self
    }

    /// The rule for a request path: its method rule, else its service default.
    pub fn lookup(&self, path: &str) -> Option<&Access> {
        if let Some(access) = self.methods.get(path) {
            return Some(access);
        }
        let service_end = path.rfind('/')?;
        self.services.get(&path[..=service_end])
    }

    /// This policy with `other`'s entries added; `other` wins where both have one.
    pub fn merge(mut self, other: AccessPolicy) -> Self {
        self.methods.extend(other.methods);
        self.services.extend(other.services);
        self
    }

    /// Every entry: method rules, then service defaults (keys ending in `/`), each
    /// sorted by path.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.methods
            .iter()
            .chain(self.services.iter())
            .map(|(path, access)| (path.as_str(), access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LICENSE: &str = "credmesh.license.v1.LicenseService";

    #[test]
    fn health_and_both_reflection_versions_are_public_by_default() {
        let policy = AccessPolicy::new();
        assert_eq!(
            policy.lookup("/grpc.health.v1.Health/Check"),
            Some(&Access::Public)
        );
        assert_eq!(
            policy.lookup("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some(&Access::Public)
        );
        assert_eq!(
            policy.lookup("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(&Access::Public)
        );
    }

    #[test]
    fn method_rule_wins_over_service_default_and_unknown_paths_have_no_rule() {
        let policy = AccessPolicy::new()
            .service_default(LICENSE, Access::Scope("license.read"))
            .rule(&format!("{LICENSE}/Issue"), Access::Scope("license.write"));
        assert_eq!(
            policy.lookup("/credmesh.license.v1.LicenseService/Issue"),
            Some(&Access::Scope("license.write"))
        );
        assert_eq!(
            policy.lookup("/credmesh.license.v1.LicenseService/Get"),
            Some(&Access::Scope("license.read"))
        );
        assert_eq!(policy.lookup("/credmesh.other.v1.Other/Get"), None);
        assert_eq!(
            policy.lookup("/credmesh.license.v1.LicenseServiceX/Get"),
            None
        );
        assert_eq!(policy.lookup("no-slash"), None);
    }

    #[test]
    fn merge_keeps_both_and_lets_the_other_policy_win() {
        let a = AccessPolicy::new().rule("/a.A/X", Access::Authenticated);
        let b = AccessPolicy::default()
            .rule("/a.A/X", Access::Public)
            .rule("/b.B/Y", Access::Scope("b"));
        let merged = a.merge(b);
        assert_eq!(merged.lookup("/a.A/X"), Some(&Access::Public));
        assert_eq!(merged.lookup("/b.B/Y"), Some(&Access::Scope("b")));
        assert_eq!(merged.entries().count(), 5);
    }
}

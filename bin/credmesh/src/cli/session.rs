//! What every client subcommand shares: the profile, one connected channel, an access
//! token obtained with the profile's key (from the identity endpoint), and readable
//! errors.

use std::{collections::HashMap, time::Duration};

use anyhow::Context as _;
use credmesh_proto::{
    identity::v1::{self as pb, identity_service_client::IdentityServiceClient},
    status,
};
use tonic::{Request, transport::Channel};

use super::ClientOpts;
use crate::profile::Profile;

/// A connected CLI session acting as the profile's client.
#[derive(Debug)]
pub struct Session {
    channel: Channel,
    /// To identity, where it is not `channel` (connected at first use).
    identity: tokio::sync::OnceCell<Channel>,
    profile: Profile,
    token: Option<String>,
    /// Print answers as JSON.
    pub json: bool,
}

impl Session {
    /// Loads the profile (the endpoint overridable) and connects.
    pub async fn open(opts: &ClientOpts) -> anyhow::Result<Session> {
        let mut profile = Profile::load(&opts.profile)?;
        if let Some(e) = &opts.endpoint {
            profile.endpoint = e.clone();
        }
        if let Some(e) = &opts.identity_endpoint {
            profile.identity_endpoint = Some(e.clone()).filter(|e| !e.is_empty());
        }
        let channel = connect(&profile.endpoint).await?;
        Ok(Session {
            channel,
            identity: tokio::sync::OnceCell::new(),
            profile,
            token: None,
            json: opts.json,
        })
    }

    /// The gRPC endpoint this session calls.
    pub fn endpoint(&self) -> &str {
        &self.profile.endpoint
    }

    /// The identity endpoint, where it is not [`Session::endpoint`].
    pub fn identity_endpoint(&self) -> Option<&str> {
        self.profile
            .identity_endpoint
            .as_deref()
            .filter(|e| *e != self.profile.endpoint)
    }

    /// The connected channel, for any service's generated client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A channel to identity: the profile's identity endpoint, or else the endpoint.
    pub async fn identity_channel(&self) -> anyhow::Result<Channel> {
        match self.identity_endpoint() {
            None => Ok(self.channel()),
            Some(url) => self
                .identity
                .get_or_try_init(|| connect(url))
                .await
                .cloned(),
        }
    }

    /// Asks identity for a token for the profile's client, proving it with a client
    /// assertion signed by the profile's key.
    pub async fn issue_token(
        &self,
        scopes: Vec<String>,
        audience: String,
    ) -> anyhow::Result<pb::IssueTokenResponse> {
        let assertion = self.profile.client_assertion()?;
        let resp = IdentityServiceClient::new(self.identity_channel().await?)
            .issue_token(pb::IssueTokenRequest {
                client_id: self.profile.client_id.clone(),
                scopes,
                audience,
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
            })
            .await
            .map_err(|s| self.explain_token_refusal(s))?;
        Ok(resp.into_inner())
    }

    /// [`explain`], adding what to do when the endpoint asked is not identity.
    fn explain_token_refusal(&self, s: tonic::Status) -> anyhow::Error {
        let elsewhere = s.code() == tonic::Code::Unimplemented
            || status::reason(&s).as_deref() == Some("AUTH_METHOD_NOT_IN_POLICY");
        let error = explain(s);
        if !elsewhere {
            return error;
        }
        let asked = self.identity_endpoint().unwrap_or(&self.profile.endpoint);
        error.context(format!(
            "{asked} is not the identity service, which issues the CLI's tokens; where \
             services run apart, name identity's endpoint as identity_endpoint in the \
             profile, --identity-endpoint or CREDMESH_IDENTITY_ENDPOINT"
        ))
    }

    /// `msg` with `authorization: Bearer <token>`, obtaining the token once.
    pub async fn authed<T>(&mut self, msg: T) -> anyhow::Result<Request<T>> {
        if self.token.is_none() {
            self.token = Some(self.issue_token(vec![], String::new()).await?.access_token);
        }
        let mut req = Request::new(msg);
        let value = format!("Bearer {}", self.token.as_deref().unwrap_or_default());
        req.metadata_mut().insert("authorization", value.parse()?);
        Ok(req)
    }
}

/// Turns a gRPC status into an error a person can act on: the sentence, the stable
/// reason and every field violation.
pub fn explain(s: tonic::Status) -> anyhow::Error {
    let mut msg = format!("{} ({:?})", s.message(), s.code());
    if let Some(reason) = status::reason(&s) {
        msg.push_str(&format!(" [{reason}]"));
    }
    for v in status::field_violations(&s) {
        msg.push_str(&format!("\n  {}: {}", v.field, v.description));
    }
    anyhow::anyhow!(msg)
}

/// A connected channel to `url`. An `https://` endpoint is verified against the
/// system's roots plus `CREDMESH_TLS_CA_FILE`, and `CREDMESH_TLS_CERT_FILE` and
/// `CREDMESH_TLS_KEY_FILE` are shown to a server that asks for a client certificate
/// (the same settings, read the same way, as the services').
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let tls = credmesh_runtime::tls::TlsFiles::from_env(&env)?.client()?;
    let mut endpoint = Channel::from_shared(url.to_string())
        .with_context(|| format!("the endpoint '{url}' is not a URL"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        endpoint = endpoint
            .tls_config(tls.tonic())
            .with_context(|| format!("TLS settings for {url}"))?;
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

//! What every client subcommand shares: the profile, one connected channel, an access
//! token obtained with the profile's key, and readable errors.

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
        let channel = Channel::from_shared(profile.endpoint.clone())
            .context("the endpoint is not a URL")?
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", profile.endpoint))?;
        Ok(Session {
            channel,
            profile,
            token: None,
            json: opts.json,
        })
    }

    /// The gRPC endpoint this session calls.
    pub fn endpoint(&self) -> &str {
        &self.profile.endpoint
    }

    /// The connected channel, for any service's generated client.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Asks identity for a token for the profile's client, proving it with a client
    /// assertion signed by the profile's key.
    pub async fn issue_token(
        &self,
        scopes: Vec<String>,
        audience: String,
    ) -> anyhow::Result<pb::IssueTokenResponse> {
        let assertion = self.profile.client_assertion()?;
        let resp = IdentityServiceClient::new(self.channel())
            .issue_token(pb::IssueTokenRequest {
                client_id: self.profile.client_id.clone(),
                scopes,
                audience,
                credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                    assertion,
                )),
            })
            .await
            .map_err(explain)?;
        Ok(resp.into_inner())
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

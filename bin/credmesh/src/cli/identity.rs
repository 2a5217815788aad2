//! `credmesh identity …`: the operator CLI for clients, tokens, keys and trust lists.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use clap::{Args, Subcommand};
use credmesh_proto::{
    credential::v1::{Envelope, KeyStatus, TrustList},
    identity::v1::{self as pb, identity_service_client::IdentityServiceClient},
    prost::Message as _,
};
use tonic::{Request, transport::Channel};

use super::{
    ClientOpts,
    session::{Session, explain},
};

/// `credmesh identity` arguments.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// Registered clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Obtain an access token for the profile's client and print it.
    Token {
        /// Scopes to ask for (default: all the client's scopes).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The audience (default: every service of the region).
        #[arg(long, default_value = "")]
        audience: String,
    },
    /// Print a fresh client assertion for the profile's client: an RFC 7523 JWT signed
    /// with its key, good once and for 2 minutes. It is what an HTTP client sends to the
    /// token endpoint (POST /v1/token, client_assertion). Needs no connection.
    Assertion,
    /// Issuer signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The region's signed trust list.
    #[command(subcommand, name = "trust-list")]
    TrustList(TrustListCommand),
    /// Partner regions' pinned anchor keys.
    #[command(subcommand)]
    Anchors(AnchorsCommand),
}

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Register a client.
    Register {
        /// Client id (lowercase letters, digits, '-', '.', ':'), as `show` and `disable`
        /// take it.
        #[arg(required_unless_present = "id_flag", conflicts_with = "id_flag")]
        id: Option<String>,
        /// The same as `--id`, as earlier versions took it.
        #[arg(long = "id", id = "id_flag", hide = true)]
        id_flag: Option<String>,
        /// service, partner, operator, department, inspector or enterprise.
        #[arg(long)]
        kind: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Scopes (repeat the flag).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The organisation's unified social credit code.
        #[arg(long, default_value = "")]
        org: String,
        /// The client's PKCS#8 PEM key file; its public key is registered.
        #[arg(long, conflicts_with = "public_key")]
        key_file: Option<PathBuf>,
        /// The client's raw Ed25519 public key, base64url.
        #[arg(long)]
        public_key: Option<String>,
        /// Inspector's law-enforcement certificate number.
        #[arg(long, default_value = "")]
        cert: String,
        /// Idempotency key, so a retried command registers once.
        #[arg(long, default_value = "")]
        idempotency_key: String,
        /// Also write a CLI profile for the new client to this file (with --key-file):
        /// this endpoint, the client id and the key file, for `--profile FILE`.
        #[arg(long, requires = "key_file")]
        write_profile: Option<PathBuf>,
    },
    /// List clients.
    List,
    /// Show one client.
    Show {
        /// Client id.
        id: String,
    },
    /// Disable a client.
    Disable {
        /// Client id.
        id: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List issuer keys.
    List {
        /// Only this issuer's keys (e.g. SH/license).
        #[arg(long, default_value = "")]
        issuer: String,
    },
    /// Revoke an issuer key: nothing it signed verifies any more.
    Revoke {
        /// Key id.
        kid: String,
        /// Why (audited).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum TrustListCommand {
    /// Show the trust list's keys.
    Show,
    /// Write the signed trust list (protobuf Envelope) to a file, for a partner.
    Export {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Import a partner's signed trust list from a file.
    Import {
        /// The partner's exported trust list.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AnchorsCommand {
    /// Pin a partner region's anchor key (compare it out of band first).
    Pin {
        /// SH, JS, ZJ or AH.
        #[arg(long)]
        region: String,
        /// The anchor key id.
        #[arg(long)]
        kid: String,
        /// The raw Ed25519 public key, base64url.
        #[arg(long)]
        public_key: String,
        /// Where the partner's trust list is fetched: its public URL (as `credmesh region
        /// anchor` prints it) or its identity's address.
        #[arg(long, default_value = "")]
        partner_url: String,
    },
    /// List pinned anchors.
    List,
}

/// A connected, authenticated identity client.
struct Conn {
    client: IdentityServiceClient<Channel>,
    session: Session,
    json: bool,
}

impl Conn {
    async fn open(opts: &ClientOpts) -> anyhow::Result<Conn> {
        let session = Session::open(opts).await?;
        Ok(Conn {
            client: IdentityServiceClient::new(session.identity_channel().await?),
            json: session.json,
            session,
        })
    }

    async fn token(
        &mut self,
        scopes: Vec<String>,
        audience: String,
    ) -> anyhow::Result<pb::IssueTokenResponse> {
        self.session.issue_token(scopes, audience).await
    }

    async fn authed<T>(&mut self, msg: T) -> anyhow::Result<Request<T>> {
        self.session.authed(msg).await
    }
}

fn kind_number(kind: &str) -> anyhow::Result<i32> {
    credmesh_auth::PrincipalKind::parse(kind)
        .map(|k| k.to_proto())
        .with_context(|| format!("'{kind}' is not a kind: service, partner, operator, department, inspector or enterprise"))
}

fn print_client(c: &pb::Client, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "client_id": c.client_id,
                "kind": credmesh_auth::PrincipalKind::from_proto(c.kind).map(|k| k.as_str()),
                "display_name": c.display_name,
                "scopes": c.scopes,
                "organization": c.organization,
                "public_key": B64.encode(&c.public_key),
                "disabled": c.disabled,
            })
        );
    } else {
        println!(
            "{:<28} {:<11} {:<9} {:<40} {}",
            c.client_id,
            credmesh_auth::PrincipalKind::from_proto(c.kind).map_or("?", |k| k.as_str()),
            if c.disabled { "disabled" } else { "active" },
            c.scopes.join(","),
            c.display_name
        );
    }
}

fn key_status(s: i32) -> &'static str {
    match KeyStatus::try_from(s) {
        Ok(KeyStatus::Active) => "active",
        Ok(KeyStatus::Retired) => "retired",
        Ok(KeyStatus::Revoked) => "revoked",
        _ => "?",
    }
}

/// Runs `credmesh identity …`.
pub async fn run(args: IdentityArgs) -> anyhow::Result<()> {
    if let IdentityCommand::Assertion = args.command {
        let profile = crate::profile::Profile::load(&args.opts.profile)?;
        println!("{}", profile.client_assertion()?);
        return Ok(());
    }
    let mut conn = Conn::open(&args.opts).await?;
    match args.command {
        // Answered above, without a connection.
        IdentityCommand::Assertion => {}
        IdentityCommand::Token { scopes, audience } => {
            let t = conn.token(scopes, audience).await?;
            println!("{}", t.access_token);
        }
        IdentityCommand::Clients(cmd) => match cmd {
            ClientsCommand::Register {
                id,
                id_flag,
                kind,
                name,
                scopes,
                org,
                key_file,
                public_key,
                cert,
                idempotency_key,
                write_profile,
            } => {
                let id = id.or(id_flag).unwrap_or_default();
                // Refuse before registering, so a refusal leaves nothing behind.
                if let Some(path) = &write_profile
                    && path.exists()
                {
                    anyhow::bail!(
                        "{} exists already; refusing to overwrite a profile",
                        path.display()
                    );
                }
                let profile = match (&write_profile, &key_file) {
                    (Some(path), Some(key)) => Some((
                        path.clone(),
                        crate::profile::Profile {
                            endpoint: conn.session.endpoint().to_string(),
                            identity_endpoint: conn.session.identity_endpoint().map(str::to_string),
                            client_id: id.clone(),
                            key_file: std::path::absolute(key)
                                .with_context(|| format!("resolving {}", key.display()))?,
                        },
                    )),
                    _ => None,
                };
                let public_key = match (key_file, public_key) {
                    (Some(f), _) => {
                        let pem = std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?;
                        credmesh_credential::keys::IssuerKey::from_pkcs8_pem("cli", &pem)?
                            .public_key_bytes()
                            .to_vec()
                    }
                    (None, Some(b)) => B64
                        .decode(b.trim_end_matches('='))
                        .context("--public-key is not base64url")?,
                    (None, None) => anyhow::bail!("give --key-file or --public-key"),
                };
                let req = conn
                    .authed(pb::RegisterClientRequest {
                        client_id: id,
                        kind: kind_number(&kind)?,
                        display_name: name,
                        scopes,
                        organization: org,
                        public_key,
                        client_secret: String::new(),
                        enforcement_certificate: cert,
                        idempotency_key,
                    })
                    .await?;
                let resp = conn.client.register_client(req).await.map_err(explain)?;
                if let Some(c) = resp.into_inner().client {
                    print_client(&c, conn.json);
                }
                if let Some((path, profile)) = profile {
                    profile.save(&path)?;
                    eprintln!(
                        "wrote {}: act as {} with --profile {}",
                        path.display(),
                        profile.client_id,
                        path.display()
                    );
                }
            }
            ClientsCommand::List => {
                let mut token = String::new();
                loop {
                    let req = conn
                        .authed(pb::ListClientsRequest {
                            page_size: 0,
                            page_token: token.clone(),
                        })
                        .await?;
                    let page = conn
                        .client
                        .list_clients(req)
                        .await
                        .map_err(explain)?
                        .into_inner();
                    for c in &page.clients {
                        print_client(c, conn.json);
                    }
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    token = page.next_page_token;
                }
            }
            ClientsCommand::Show { id } => {
                let req = conn.authed(pb::GetClientRequest { client_id: id }).await?;
                let resp = conn.client.get_client(req).await.map_err(explain)?;
                if let Some(c) = resp.into_inner().client {
                    print_client(&c, conn.json);
                }
            }
            ClientsCommand::Disable { id, reason } => {
                let req = conn
                    .authed(pb::DisableClientRequest {
                        client_id: id,
                        reason,
                    })
                    .await?;
                let resp = conn.client.disable_client(req).await.map_err(explain)?;
                if let Some(c) = resp.into_inner().client {
                    print_client(&c, conn.json);
                }
            }
        },
        IdentityCommand::Keys(cmd) => match cmd {
            KeysCommand::List { issuer } => {
                let req = conn.authed(pb::ListIssuerKeysRequest { issuer }).await?;
                let resp = conn.client.list_issuer_keys(req).await.map_err(explain)?;
                for k in resp.into_inner().keys.into_iter().filter_map(|k| k.key) {
                    println!(
                        "{:<40} {:<16} {:<8} {}",
                        k.kid,
                        k.issuer,
                        key_status(k.status),
                        B64.encode(&k.public_key)
                    );
                }
            }
            KeysCommand::Revoke { kid, reason } => {
                let req = conn
                    .authed(pb::RevokeIssuerKeyRequest { kid, reason })
                    .await?;
                let resp = conn.client.revoke_issuer_key(req).await.map_err(explain)?;
                if let Some(k) = resp.into_inner().key.and_then(|k| k.key) {
                    println!("{} {}", k.kid, key_status(k.status));
                }
            }
        },
        IdentityCommand::TrustList(cmd) => match cmd {
            TrustListCommand::Show => {
                let resp = conn
                    .client
                    .get_trust_list(pb::GetTrustListRequest {})
                    .await
                    .map_err(explain)?
                    .into_inner();
                let env = resp
                    .trust_list
                    .context("the answer carried no trust list")?;
                let list = TrustList::decode(env.payload.as_slice())
                    .context("the trust list does not decode")?;
                println!(
                    "region {}  sequence {}  anchor {} {}",
                    list.region,
                    list.sequence,
                    resp.anchor_kid,
                    B64.encode(&resp.anchor_public_key)
                );
                for k in &list.keys {
                    println!("  {:<40} {:<16} {}", k.kid, k.issuer, key_status(k.status));
                }
            }
            TrustListCommand::Export { out } => {
                let resp = conn
                    .client
                    .get_trust_list(pb::GetTrustListRequest {})
                    .await
                    .map_err(explain)?
                    .into_inner();
                let env = resp
                    .trust_list
                    .context("the answer carried no trust list")?;
                std::fs::write(&out, env.encode_to_vec())?;
                println!(
                    "wrote {}; the partner pins anchor {} {}",
                    out.display(),
                    resp.anchor_kid,
                    B64.encode(&resp.anchor_public_key)
                );
            }
            TrustListCommand::Import { file } => {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let env = Envelope::decode(bytes.as_slice())
                    .context("the file is not a signed trust list")?;
                let req = conn
                    .authed(pb::ImportPartnerTrustListRequest {
                        trust_list: Some(env),
                    })
                    .await?;
                let r = conn
                    .client
                    .import_partner_trust_list(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                println!(
                    "imported the trust list of {} (sequence {}, {} keys)",
                    r.region, r.sequence, r.key_count
                );
            }
        },
        IdentityCommand::Anchors(cmd) => match cmd {
            AnchorsCommand::Pin {
                region,
                kid,
                public_key,
                partner_url,
            } => {
                let public_key = B64
                    .decode(public_key.trim_end_matches('='))
                    .context("--public-key is not base64url")?;
                let req = conn
                    .authed(pb::PinPartnerAnchorRequest {
                        anchor: Some(pb::PartnerAnchor {
                            region,
                            kid,
                            public_key,
                            pinned_at: 0,
                            endpoint: partner_url,
                        }),
                    })
                    .await?;
                let a = conn
                    .client
                    .pin_partner_anchor(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                if let Some(a) = a.anchor {
                    println!("pinned {} anchor {}", a.region, a.kid);
                }
            }
            AnchorsCommand::List => {
                let req = conn.authed(pb::ListPartnerAnchorsRequest {}).await?;
                let r = conn
                    .client
                    .list_partner_anchors(req)
                    .await
                    .map_err(explain)?
                    .into_inner();
                for a in r.anchors {
                    println!(
                        "{:<3} {:<40} {} {}",
                        a.region,
                        a.kid,
                        B64.encode(&a.public_key),
                        a.endpoint
                    );
                }
            }
        },
    }
    Ok(())
}

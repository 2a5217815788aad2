//! `credmesh region`: what partner regions need to federate with this one, read from an
//! identity service's public trust list.

use anyhow::Context as _;
use base64::Engine as _;
use credmesh_credential::{Context, VerifyingKey, envelope::open};
use credmesh_proto::{
    credential::v1::TrustList,
    identity::v1::{GetTrustListRequest, identity_service_client::IdentityServiceClient},
};

/// `credmesh region` arguments.
#[derive(Debug, clap::Args)]
pub struct RegionArgs {
    #[command(subcommand)]
    command: RegionCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RegionCommand {
    /// Show a region's anchor key and the lines partners use to pin it. Compare the
    /// anchor key out of band (phone, signed letter) before a partner pins it.
    Anchor {
        /// The region's identity gRPC endpoint.
        #[arg(
            long,
            default_value = "http://127.0.0.1:50051",
            env = "CREDMESH_ENDPOINT"
        )]
        endpoint: String,
        /// The URL partners fetch this region's trust list from (`<url>/v1/trust/list`),
        /// put in the printed lines; by default the region's public URL named in its
        /// trust list, or else --endpoint.
        #[arg(long)]
        public_endpoint: Option<String>,
    },
}

/// Runs `credmesh region`.
pub async fn run(args: RegionArgs) -> anyhow::Result<()> {
    match args.command {
        RegionCommand::Anchor {
            endpoint,
            public_endpoint,
        } => {
            let channel = super::session::connect(&endpoint).await?;
            let r = IdentityServiceClient::new(channel)
                .get_trust_list(GetTrustListRequest {})
                .await?
                .into_inner();
            let key: [u8; 32] = r
                .anchor_public_key
                .as_slice()
                .try_into()
                .context("the region names no 32-byte anchor key")?;
            let anchor = VerifyingKey::from_bytes(&key)?;
            let list: TrustList = open(
                Context::TrustList,
                r.trust_list.as_ref().context("no trust list")?,
                &anchor,
            )
            .context("the trust list does not verify against the anchor it names")?;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
            let public = public_endpoint.unwrap_or_else(|| {
                if list.status_base_url.is_empty() {
                    endpoint
                } else {
                    list.status_base_url.clone()
                }
            });
            println!("region       {}", list.region);
            println!("anchor       {} {b64}", r.anchor_kid);
            println!(
                "trust list   sequence {}, {} keys, status at {}",
                list.sequence,
                list.keys.len(),
                list.status_base_url
            );
            println!();
            println!("a partner's verify gateway pins it with:");
            println!("  CREDMESH_PARTNERS={}={public}@{b64}", list.region);
            println!("a partner's identity service pins it with:");
            println!(
                "  credmesh identity anchors pin --region {} --kid {} --public-key {b64} --partner-url {public}",
                list.region, r.anchor_kid
            );
            Ok(())
        }
    }
}

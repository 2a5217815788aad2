//! End-to-end harness: runs the real `credmesh` binary on ephemeral loopback ports and
//! stops it when the test ends.
//!
//! The binary is the one cargo built for this workspace (`make test` builds every
//! target before running tests). Tests talk to it only through its public surfaces:
//! gRPC, HTTP and its printed output.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// What one run of the `credmesh` CLI gave back.
#[derive(Debug)]
pub struct CliRun {
    /// Its exit status (`None` when a signal ended it).
    pub status: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl CliRun {
    /// Standard output, then standard error: everything a person would have seen.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the `credmesh` CLI acting as the party of `profile` (`--profile`), without
/// backtraces in its errors.
pub async fn cli_as(profile: &std::path::Path, args: &[&str]) -> CliRun {
    let out = Command::new(credmesh_bin())
        .args(args)
        .arg("--profile")
        .arg(profile)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("running the credmesh binary");
    CliRun {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The workspace's `credmesh` binary (or `CREDMESH_BIN`, when several worktrees share one
/// target directory).
pub fn credmesh_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CREDMESH_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/credmesh");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p credmesh` (make test does)",
        bin.display()
    );
    bin
}

/// How to start `credmesh dev` beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct DevOptions {
    /// More environment (`RUST_LOG` defaults to `warn`; set it here to see more).
    pub env: Vec<(String, String)>,
    /// Write the process's stderr (its logs) to this file instead of the test's stderr.
    pub stderr: Option<PathBuf>,
}

/// A running `credmesh dev`.
#[derive(Debug)]
pub struct Dev {
    child: Child,
    /// The gRPC address it bound.
    pub grpc: String,
    /// The HTTP address it bound.
    pub http: String,
    /// Everything it printed before it was ready.
    pub banner: String,
    /// Its data directory.
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Dev {
    /// Starts `credmesh dev` on ephemeral ports in a fresh data directory.
    pub async fn start() -> anyhow::Result<Dev> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let mut dev = Self::start_in(&data).await?;
        dev._dir = Some(dir);
        Ok(dev)
    }

    /// Starts `credmesh dev` on ephemeral ports with `data` as its data directory.
    pub async fn start_in(data: &std::path::Path) -> anyhow::Result<Dev> {
        Self::start_with(data, &DevOptions::default()).await
    }

    /// Starts `credmesh dev` on ephemeral ports with `data` as its data directory, more
    /// environment and, when asked, its stderr (the logs) written to a file.
    pub async fn start_with(data: &std::path::Path, options: &DevOptions) -> anyhow::Result<Dev> {
        let stderr = match &options.stderr {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(credmesh_bin())
            .args([
                "dev",
                "--grpc",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .env("RUST_LOG", "warn")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("starting credmesh dev")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(rest) = line.strip_prefix("credmesh dev ready ") {
                    let mut grpc = None;
                    let mut http = None;
                    for part in rest.split_whitespace() {
                        if let Some(v) = part.strip_prefix("grpc=") {
                            grpc = Some(v.to_string());
                        }
                        if let Some(v) = part.strip_prefix("http=") {
                            http = Some(v.to_string());
                        }
                    }
                    return Ok::<_, anyhow::Error>((grpc, http));
                }
            }
            bail!("credmesh dev exited before it was ready:\n{banner}")
        })
        .await
        .context("credmesh dev was not ready within 60 s")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        let mut rest = String::new();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
            }
        });
        let (Some(grpc), Some(http)) = ready else {
            bail!("the ready line did not name both addresses");
        };
        // The banner continues after the ready line; give it a moment to arrive.
        Ok(Dev {
            child,
            grpc,
            http,
            banner,
            data: data.to_path_buf(),
            _dir: None,
        })
    }

    /// The process id (for resource measurements).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the process (SIGKILL; it keeps no state outside its data directory).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// A running `credmesh serve <service>`: one service in its own process, configured by
/// the environment only, as in production.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    /// The address it serves gRPC and HTTP on.
    pub addr: String,
    /// Its log lines (JSON), as far as they have arrived.
    pub logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    /// Starts `credmesh serve <service>` on an ephemeral loopback port with `env` added to
    /// the test's environment (JSON logs at `info` unless `env` says otherwise), and waits
    /// for its `serving` log line, which names the bound address.
    pub async fn start(service: &str, env: &[(String, String)]) -> anyhow::Result<Serve> {
        let mut child = Command::new(credmesh_bin())
            .args(["serve", service])
            .env("CREDMESH_GRPC_ADDR", "127.0.0.1:0")
            .env("CREDMESH_HTTP_ADDR", "127.0.0.1:0")
            .env("CREDMESH_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting credmesh serve {service}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log = |line: &str| {
            let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
            logs.push_str(line);
            logs.push('\n');
        };
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                log(&line);
                // {"message":"serving","addrs":"[127.0.0.1:40123]",…}
                if line.contains("\"message\":\"serving\"")
                    && let Some(rest) = line.split("\"addrs\":\"[").nth(1)
                    && let Some(addr) = rest.split([',', ']']).next()
                {
                    return Ok::<_, anyhow::Error>(addr.to_string());
                }
            }
            bail!("credmesh serve {service} exited before serving")
        })
        .await
        .with_context(|| format!("credmesh serve {service} did not serve within 60 s"))?
        .with_context(|| logs.lock().map(|l| l.clone()).unwrap_or_default())?;
        let drained = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut logs = drained.lock().unwrap_or_else(|e| e.into_inner());
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        Ok(Serve { child, addr, logs })
    }

    /// Stops the process with SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// The Python interpreter with the third-party verifiers (`make deps` makes it).
pub fn python() -> PathBuf {
    std::env::var_os("CREDMESH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python")
        })
}

/// Runs a script of `tools/interop` with the venv's Python; returns its stdout.
pub async fn interop(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/interop")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .await
        .with_context(|| {
            format!(
                "running {} (run `make deps` for the Python venv)",
                path.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{script} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The operator token `credmesh dev` prints in its banner.
pub fn operator_token(banner: &str) -> String {
    let lines: Vec<&str> = banner.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("operator token"))
        .expect("the banner prints an operator token");
    lines[i + 1].trim().to_string()
}

/// `msg` as a request carrying `authorization: Bearer <token>`.
pub use credmesh_testkit::with_token;

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Generates an Ed25519 key, writes it as PKCS#8 PEM to `dir/name`, returns it and
/// the path.
pub fn write_key(
    dir: &std::path::Path,
    name: &str,
) -> (credmesh_credential::keys::IssuerKey, String) {
    let key = credmesh_credential::keys::IssuerKey::generate(name).expect("a fresh key");
    let path = dir.join(name);
    std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).expect("writing a key file");
    (key, path.display().to_string())
}

/// Starts `credmesh serve <service>` with `env`, killed when dropped.
pub fn serve(service: &str, env: &[(&str, String)]) -> Child {
    Command::new(credmesh_bin())
        .args(["serve", service])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("starting credmesh serve")
}

/// Waits (up to 30 s) until `service` at `addr` reports SERVING; its channel.
pub async fn wait_serving(addr: &str, service: &str) -> tonic::transport::Channel {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    for _ in 0..600 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("an address is a valid uri")
            .connect()
            .await
        {
            let status = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .ok();
            if status == Some(ServingStatus::Serving as i32) {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service} at {addr} never reported SERVING");
}

/// Registers a client of `kind` at identity (as `operator`) holding `scopes`, for
/// `organization` (a USCC; departments, inspectors and enterprises need one), and
/// returns an access token it got with a signed client assertion. Inspectors get a
/// law-enforcement certificate number.
pub async fn client_token(
    channel: &tonic::transport::Channel,
    operator: &str,
    kind: credmesh_auth::PrincipalKind,
    client_id: &str,
    scopes: Vec<String>,
    organization: &str,
) -> anyhow::Result<String> {
    use credmesh_auth::PrincipalKind;
    use credmesh_proto::identity::v1::{
        self as pb, identity_service_client::IdentityServiceClient,
    };
    let mut identity = IdentityServiceClient::new(channel.clone());
    let key = credmesh_credential::keys::IssuerKey::generate(client_id)?;
    identity
        .register_client(with_token(
            pb::RegisterClientRequest {
                client_id: client_id.into(),
                kind: kind.to_proto(),
                display_name: format!("test client {client_id}"),
                scopes,
                organization: organization.into(),
                public_key: key.public_key_bytes().to_vec(),
                enforcement_certificate: if kind == PrincipalKind::Inspector {
                    "沪执法31000012345".into()
                } else {
                    String::new()
                },
                ..Default::default()
            },
            operator,
        ))
        .await
        .with_context(|| format!("registering client {client_id}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let assertion = credmesh_auth::client_assertion(client_id, key.signing_key(), now)?;
    let token = identity
        .issue_token(pb::IssueTokenRequest {
            client_id: client_id.into(),
            credential: Some(pb::issue_token_request::Credential::ClientAssertion(
                assertion,
            )),
            ..Default::default()
        })
        .await
        .with_context(|| format!("a token for {client_id}"))?
        .into_inner()
        .access_token;
    Ok(token)
}

/// A complete, valid request establishing a Shanghai (Huangpu) enterprise `uscc`,
/// registered by the municipal bureau; tests change the fields they are about.
pub fn establishment(uscc: &str) -> credmesh_proto::license::v1::EstablishEnterpriseRequest {
    use credmesh_proto::license::v1 as lpb;
    lpb::EstablishEnterpriseRequest {
        uscc: uscc.into(),
        name: "上海测试科技有限公司".into(),
        entity_type: "有限责任公司（自然人投资或控股）".into(),
        legal_representative: "李四".into(),
        registered_capital: Some(lpb::Money {
            amount: "1000000.00".into(),
            currency_code: "CNY".into(),
        }),
        establishment_date: "2021-03-01".into(),
        business_term: Some(lpb::BusinessTerm {
            long_term: true,
            ..Default::default()
        }),
        domicile: "上海市黄浦区示例路2号".into(),
        business_scope: "软件开发。".into(),
        registration_authority: "11310000MB2F10003D".into(),
        ..Default::default()
    }
}

/// The line after the banner line starting with `prefix` (`credmesh dev` prints each
/// value it hands out on the line below its label).
pub fn banner_value(banner: &str, prefix: &str) -> String {
    let lines: Vec<&str> = banner.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("the banner has no '{prefix}' line:\n{banner}"));
    lines[i + 1].trim().to_string()
}

/// An HTTP/1.1 answer, read to the end.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// One HTTP/1.1 request (`Connection: close`) to `addr` with `headers` and `body`; a
/// plain socket, so what the server sends is seen as it is.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("Connection: close\r\n\r\n");
    request.push_str(body);
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without a blank line after its head")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP status line: {head}"))?;
    Ok(HttpAnswer {
        status,
        head,
        body: buf[split + 4..].to_vec(),
    })
}

/// `POST path` of the JSON `body` with `token`; the status and the JSON answer.
pub async fn post_json(
    addr: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let answer = http(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
    .expect("an HTTP answer");
    (answer.status, answer.json())
}

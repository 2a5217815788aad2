//! Redis for tests: the shared servers started by `make test`, and private servers for fault tests.
//!
//! Most tests use the shared standalone server ([`shared_url`]) or the shared cluster
//! ([`shared_cluster_url`]) with a [`unique_prefix`] so they never see each other's keys. A test
//! that must kill Redis under a client starts its own [`RedisServer`] or [`RedisCluster`]: real
//! `redis-server` processes on loopback ports, in a temporary directory, killed on drop.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// Environment variable holding the shared standalone server's URL.
pub const SHARED_URL_ENV: &str = "CREDMESH_TEST_REDIS_URL";
/// Environment variable holding the shared cluster's URL (`redis-cluster://h:p,h:p,...`).
pub const SHARED_CLUSTER_URL_ENV: &str = "CREDMESH_TEST_REDIS_CLUSTER_URL";

/// How long a server (or a cluster) may take to answer after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at finding a free port before giving up (see [`free_port`] for the race).
const PORT_ATTEMPTS: usize = 5;

/// Address of the shared Redis server started by `make test` (env `CREDMESH_TEST_REDIS_URL`),
/// e.g. `redis://127.0.0.1:26379`.
///
/// Panics with a message saying how to start it when the variable is unset: a missing server is
/// a broken test environment, not a reason to skip.
pub fn shared_url() -> String {
    shared_env(SHARED_URL_ENV)
}

/// Address of the shared Redis Cluster started by `make test` (env
/// `CREDMESH_TEST_REDIS_CLUSTER_URL`), e.g.
/// `redis-cluster://127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003`.
///
/// Panics like [`shared_url`] when unset.
pub fn shared_cluster_url() -> String {
    shared_env(SHARED_CLUSTER_URL_ENV)
}

fn shared_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{name} is not set: these tests need the shared Redis servers. Run them with \
             `make test`, or start the servers with `scripts/test-env.sh start` and export \
             the variables it prints"
        ),
    }
}

/// A key prefix of its own for one test, `test:<random>:`, so tests sharing a server (and
/// concurrent test runs) never read or delete each other's keys.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // RandomState is seeded randomly per process: mixing it in keeps two processes that start
    // in the same nanosecond apart.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(nanos);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("test:{:016x}:", hasher.finish())
}

/// A private `redis-server` on a loopback port, for tests that stop and restart Redis under a
/// client. Data lives in a temporary directory; nothing is persisted (`--save ''`,
/// `--appendonly no`). The process is killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    node: Node,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let dir = TempDir::new().context("create redis data dir")?;
        let node = Node::start_on_free_port(dir, &[]).await?;
        Ok(RedisServer { node })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.node.url()
    }

    /// The port, which stays the same across [`RedisServer::restart`].
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// Kills the server (SIGKILL, like a crash); clients see their connections drop.
    pub async fn stop(&mut self) {
        self.node.stop();
    }

    /// Starts the server again on the same port and waits until it answers PING.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.node.stop();
        self.node.spawn()?;
        self.node.wait_ready().await
    }
}

/// A private three-node Redis Cluster (three primaries, no replicas) for tests that stop and
/// restart a cluster under a client. Killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok`.
    pub async fn start() -> anyhow::Result<RedisCluster> {
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            let dir = TempDir::new().context("create redis data dir")?;
            // The cluster bus port is chosen explicitly: the default (port + 10000) does not
            // exist for ephemeral ports above 55535.
            let bus_port = free_port()?;
            let args = cluster_args(bus_port);
            nodes.push(Node::start_on_free_port(dir, &args).await?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdin(Stdio::null())
                .output()
        })
        .await
        .context("join redis-cli task")?
        .context("run redis-cli --cluster create (is redis-tools installed?)")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_cluster_ok().await?;
        Ok(cluster)
    }

    /// `redis-cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>`.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// The nodes' ports, in the order of [`RedisCluster::url`].
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Kills every node (SIGKILL).
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Starts every node again on the same ports with the same cluster configuration (each
    /// node's `nodes.conf` survives in its directory) and waits for `cluster_state:ok`.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.stop();
            node.spawn()?;
        }
        for node in &mut self.nodes {
            node.wait_ready().await?;
        }
        self.wait_cluster_ok().await
    }

    async fn wait_cluster_ok(&self) -> anyhow::Result<()> {
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).context("parse node url")?;
            let deadline = tokio::time::Instant::now() + READY_DEADLINE;
            loop {
                let info = cluster_info(&client).await;
                if info
                    .as_deref()
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
                {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    bail!(
                        "redis cluster node on port {} not ok after {:?}: {:?}",
                        node.port,
                        READY_DEADLINE,
                        info
                    );
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(())
    }
}

fn cluster_args(bus_port: u16) -> Vec<String> {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        "--cluster-port",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([bus_port.to_string()])
    .collect()
}

async fn cluster_info(client: &redis::Client) -> anyhow::Result<String> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await?;
    Ok(info)
}

/// One `redis-server` child process, restartable on the same port and directory.
#[derive(Debug)]
struct Node {
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    // Dropped after `child` is killed (see `Drop`), so the directory outlives the process.
    dir: TempDir,
}

impl Node {
    /// Starts a server on a free port, retrying with another port if the one picked was taken
    /// in the meantime (see [`free_port`]).
    async fn start_on_free_port(dir: TempDir, extra_args: &[String]) -> anyhow::Result<Node> {
        let mut node = Node {
            port: 0,
            extra_args: extra_args.to_vec(),
            child: None,
            dir,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            node.port = free_port()?;
            node.spawn()?;
            match node.wait_ready().await {
                Ok(()) => return Ok(node),
                Err(e) => {
                    node.stop();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn redis-server (is the redis-server package installed?)")?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls PING until it answers, the process exits, or the deadline passes.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url()).context("parse redis url")?;
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if ping(&client).await.is_ok() {
                return Ok(());
            }
            if self.exited() {
                bail!(
                    "redis-server on port {} exited: {}",
                    self.port,
                    tail(&self.log_path())
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "redis-server on port {} not ready after {:?}: {}",
                    self.port,
                    READY_DEADLINE,
                    tail(&self.log_path())
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn ping(client: &redis::Client) -> redis::RedisResult<()> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// A port that was free a moment ago: bind `127.0.0.1:0`, read the port, release it.
///
/// Another process may take the port between the release and redis-server binding it; callers
/// retry with a new port when the server fails to start.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port")?;
    Ok(listener.local_addr().context("read ephemeral port")?.port())
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_prefixes_differ_and_have_the_test_shape() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        assert!(a.starts_with("test:") && a.ends_with(':'), "{a}");
    }

    #[tokio::test]
    async fn a_private_server_answers_and_comes_back_on_the_same_port_after_restart() {
        let mut server = RedisServer::start().await.unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        ping(&client).await.unwrap();
        let port = server.port();
        server.stop().await;
        assert!(ping(&client).await.is_err());
        server.restart().await.unwrap();
        assert_eq!(server.port(), port);
        ping(&client).await.unwrap();
    }
}

//! A fresh PostgreSQL database per test on the shared test server, and a private server
//! ([`PostgresServer`]) for tests that crash the database under a service.
//!
//! `make test` starts one throw-away server (`scripts/test-env.sh`) and exports its
//! address as `CREDMESH_TEST_POSTGRES_URL`. Each test creates its own database there,
//! so tests run in parallel without seeing each other's rows; a finished test's database
//! is dropped by the next test to start (see [`fresh_database`]), and the server with
//! whatever is left is discarded when the run ends.

use anyhow::Context as _;
use sqlx::Connection as _;

/// The environment variable naming the shared test server.
pub const ENV: &str = "CREDMESH_TEST_POSTGRES_URL";

/// The shared server's URL (without a database name), e.g.
/// `postgres://postgres@127.0.0.1:25432`.
///
/// # Panics
/// When the variable is unset: the test cannot run without its real backend, and
/// skipping it would pass without testing anything.
pub fn server_url() -> String {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
        _ => panic!(
            "{ENV} is not set: run the tests with `make test`, or start the test servers \
             with `scripts/test-env.sh start` and source `target/test-env/env`"
        ),
    }
}

/// Creates a new, empty database on the shared server and returns its URL.
///
/// The name carries the creating process's id. On a loopback server, databases left by
/// test processes that have since exited are dropped first: nextest runs each test in
/// its own process, and every PostgreSQL test's database (several megabytes) would
/// otherwise stay on disk until the server is discarded.
pub async fn fresh_database() -> anyhow::Result<String> {
    let server = server_url();
    let name = format!("t_{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .with_context(|| format!("connecting to the test postgres server at {server}"))?;
    if is_loopback(&server) {
        drop_databases_of_exited_tests(&mut admin).await;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .context("creating a test database")?;
    admin.close().await.ok();
    Ok(format!("{server}/{name}"))
}

fn is_loopback(server: &str) -> bool {
    server
        .parse::<sqlx::postgres::PgConnectOptions>()
        .is_ok_and(|options| {
            matches!(
                options.get_host(),
                "127.0.0.1" | "localhost" | "::1" | "[::1]"
            )
        })
}

/// Drops the `t_<pid>_<uuid>` databases whose process no longer runs, ending any
/// connection still open to them (a server the test started and left behind). Best
/// effort: an error (another process dropping the same database) leaves it for a later
/// call. Without `/proc` (not Linux) nothing is dropped.
async fn drop_databases_of_exited_tests(admin: &mut sqlx::PgConnection) {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    for name in names {
        let Some(pid) = name
            .strip_prefix("t_")
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain || pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut *admin)
            .await;
    }
}

/// A private PostgreSQL server on a free loopback port, for tests that crash and restart
/// the database under a running service. Its data directory is a temporary directory;
/// the server is stopped (immediately) on drop.
///
/// Uses the PostgreSQL that `make deps` installs (`/usr/lib/postgresql/<n>/bin`). As
/// root (CI), the server runs as the `postgres` user, which `initdb` requires.
#[derive(Debug)]
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl PostgresServer {
    /// Initialises a cluster and starts it; returns once it accepts connections.
    pub async fn start() -> anyhow::Result<PostgresServer> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed under /usr/lib/postgresql (run make deps)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .context("no PostgreSQL version with pg_ctl under /usr/lib/postgresql")?;
        let dir = tempfile::TempDir::new().context("a data directory")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let server = PostgresServer { dir, bin, port };
        if is_root() {
            run(std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path()))?;
        }
        let data = server.data();
        run(server
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data))?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>` (no database name).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", self.url())).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await.ok();
        Ok(format!("{}/{name}", self.url()))
    }

    /// Stops the server the hard way (`pg_ctl -m immediate`: no checkpoint, connections
    /// cut, as in a crash); committed transactions survive, open ones are lost.
    pub fn crash(&self) -> anyhow::Result<()> {
        run(self
            .command("pg_ctl")
            .args(["-m", "immediate", "-w", "stop", "-D"])
            .arg(self.data()))
    }

    /// Starts the server again on the same port (crash recovery runs first).
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data())
            .arg("start"))
    }

    /// `tool` from the server's bin directory, as the `postgres` user when root.
    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "stop", "-D"])
            .arg(self.data())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::Connection as _;

    async fn exists(admin: &mut sqlx::PgConnection, name: &str) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_database_whose_test_process_has_exited_is_dropped_and_a_live_ones_kept() {
        let server = super::server_url();
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        // A process that has come and gone: its id names a database a finished test left.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let left = format!("t_{gone}_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {left}")))
            .execute(&mut admin)
            .await
            .unwrap();

        let mine = super::fresh_database().await.unwrap();
        let mine = mine.rsplit('/').next().unwrap();
        assert!(
            !exists(&mut admin, &left).await,
            "{left} outlived its process"
        );
        // This process still runs: its database stays, and the next call keeps it too.
        super::fresh_database().await.unwrap();
        assert!(exists(&mut admin, mine).await);
    }
}

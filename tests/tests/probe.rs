//! `credmesh probe` against a real `credmesh serve identity`: plaintext, TLS and mutual
//! TLS with certificates from a CA made in the test, as the chart's exec probes run it
//! (dialling 127.0.0.1, checking the certificate names the Service, showing the pod's
//! own certificate). It exits 0 only on SERVING and otherwise says why in one line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use credmesh_e2e::{Serve, credmesh_bin, write_key};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const IDENTITY: &str = "credmesh.identity.v1.IdentityService";
/// The name the chart gives identity's Service, which its certificate must carry.
const SERVICE_NAME: &str = "credmesh-identity";
const TLS_VARS: [&str; 4] = [
    "CREDMESH_TLS_CERT_FILE",
    "CREDMESH_TLS_KEY_FILE",
    "CREDMESH_TLS_CLIENT_CA_FILE",
    "CREDMESH_TLS_CA_FILE",
];

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate for `names` signed by `ca`, written as `<file>.crt` and
/// `<file>.key` under `dir`.
fn leaf(dir: &Path, file: &str, ca: &Ca, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    let (crt, k) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (crt, k)
}

/// The environment of `credmesh serve identity` on SQLite in `dir`, plus `extra`.
fn identity_env(dir: &Path, extra: &[(&str, &Path)]) -> Vec<(String, String)> {
    let (_, anchor) = write_key(dir, "anchor.pem");
    let (_, token) = write_key(dir, "token.pem");
    let mut env = vec![
        (
            "DATABASE_URL".to_string(),
            format!("sqlite://{}", dir.join("identity.db").display()),
        ),
        ("CREDMESH_ANCHOR_KEY_FILE".to_string(), anchor),
        ("CREDMESH_TOKEN_KEY_FILE".to_string(), token),
        ("RUST_LOG".to_string(), "warn,credmesh=info".to_string()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.display().to_string())),
    );
    env
}

/// What one `credmesh probe` run did: its exit code and stderr.
#[derive(Debug)]
struct Probe {
    code: Option<i32>,
    stderr: String,
}

impl Probe {
    fn passed(&self) -> bool {
        self.code == Some(0)
    }

    /// Failed with exactly one non-empty line on stderr naming `needle`.
    fn assert_failed_saying(&self, needle: &str) {
        assert!(
            !self.passed() && self.code.is_some(),
            "expected a failure: {self:?}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        assert!(
            lines[0].starts_with("credmesh probe: "),
            "the line names the command: {self:?}"
        );
        assert!(
            lines[0].contains(needle),
            "the line says {needle:?}: {self:?}"
        );
    }
}

/// Runs `credmesh probe --addr addr args…` with only `tls` of the TLS variables set.
async fn probe(addr: &str, args: &[&str], tls: &[(&str, &Path)]) -> Probe {
    let mut cmd = tokio::process::Command::new(credmesh_bin());
    cmd.args(["probe", "--addr", addr, "--timeout-ms", "3000"])
        .args(args)
        .stdout(std::process::Stdio::null());
    for var in TLS_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(tls.iter().map(|(k, v)| (*k, *v)));
    let out = cmd.output().await.expect("running credmesh probe");
    Probe {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Probes until it passes (readiness may trail the `serving` line), up to 10 s.
async fn probe_until_passed(addr: &str, args: &[&str], tls: &[(&str, &Path)]) -> Probe {
    let mut last = probe(addr, args, tls).await;
    for _ in 0..50 {
        if last.passed() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        last = probe(addr, args, tls).await;
    }
    last
}

#[tokio::test]
async fn probe_passes_a_plaintext_service_and_fails_a_stopped_port() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Serve::start("identity", &identity_env(dir.path(), &[]))
        .await
        .unwrap();
    let addr = identity.addr.clone();

    let live = probe_until_passed(&addr, &[], &[]).await;
    assert!(live.passed(), "liveness: {live:?}");
    let ready = probe_until_passed(&addr, &["--service", IDENTITY], &[]).await;
    assert!(ready.passed(), "readiness: {ready:?}");
    assert!(ready.stderr.is_empty(), "silent on success: {ready:?}");

    // A service the process does not serve: the health service says NotFound.
    probe(&addr, &["--service", "credmesh.nope.v1.Nope"], &[])
        .await
        .assert_failed_saying("NotFound");

    identity.stop().await.unwrap();
    probe(&addr, &[], &[])
        .await
        .assert_failed_saying("Unavailable");
}

#[tokio::test]
async fn probe_under_mutual_tls_passes_only_with_the_pods_certificate_and_the_services_name() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = ca("mesh");
    let other = ca("other");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &mesh.pem).unwrap();
    // As cert-manager's Secret for the chart: one certificate naming the Services.
    let (crt, key) = leaf(
        dir.path(),
        "tls",
        &mesh,
        &[SERVICE_NAME, "credmesh-identity.credmesh.svc"],
    );
    let (stranger_crt, stranger_key) = leaf(dir.path(), "stranger", &other, &[SERVICE_NAME]);

    let server_tls: [(&str, &Path); 4] = [
        ("CREDMESH_TLS_CERT_FILE", &crt),
        ("CREDMESH_TLS_KEY_FILE", &key),
        ("CREDMESH_TLS_CA_FILE", &ca_file),
        ("CREDMESH_TLS_CLIENT_CA_FILE", &ca_file),
    ];
    let identity = Serve::start("identity", &identity_env(dir.path(), &server_tls))
        .await
        .unwrap();
    let addr = identity.addr.clone();
    assert!(
        identity.logs.lock().unwrap().contains("serving TLS"),
        "identity serves TLS"
    );

    // The pod's environment, as the chart sets it: passes, liveness and readiness.
    let name = ["--server-name", SERVICE_NAME];
    let live = probe_until_passed(&addr, &name, &server_tls).await;
    assert!(live.passed(), "liveness over mutual TLS: {live:?}");
    let ready = probe_until_passed(
        &addr,
        &["--server-name", SERVICE_NAME, "--service", IDENTITY],
        &server_tls,
    )
    .await;
    assert!(ready.passed(), "readiness over mutual TLS: {ready:?}");

    // Without a client certificate: no CREDMESH_TLS_CERT_FILE means plaintext, which
    // the TLS port does not answer.
    probe(&addr, &name, &[("CREDMESH_TLS_CA_FILE", &ca_file)])
        .await
        .assert_failed_saying("http://");
    let stranger: [(&str, &Path); 3] = [
        ("CREDMESH_TLS_CERT_FILE", &stranger_crt),
        ("CREDMESH_TLS_KEY_FILE", &stranger_key),
        ("CREDMESH_TLS_CA_FILE", &ca_file),
    ];
    // A certificate from a CA the server does not admit: the handshake fails (under
    // TLS 1.3 the client may see the server's UnknownCA alert or only the connection
    // closing, so the line is checked for the URL only).
    probe(&addr, &name, &stranger)
        .await
        .assert_failed_saying("https://");
    // The right certificate but a name the server's certificate does not carry (the
    // default, localhost): refused, so a probe checks the Service's name too.
    probe(&addr, &[], &server_tls)
        .await
        .assert_failed_saying("not valid for name \"localhost\"");
    // Without CREDMESH_TLS_CA_FILE the mesh CA is not trusted.
    probe(
        &addr,
        &name,
        &[
            ("CREDMESH_TLS_CERT_FILE", &crt),
            ("CREDMESH_TLS_KEY_FILE", &key),
        ],
    )
    .await
    .assert_failed_saying("UnknownIssuer");

    identity.stop().await.unwrap();
    probe(&addr, &name, &server_tls)
        .await
        .assert_failed_saying("Unavailable");
}

#[tokio::test]
async fn probe_refuses_half_a_certificate_pair_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let crt = dir.path().join("tls.crt");
    probe(
        "127.0.0.1:9",
        &[],
        &[("CREDMESH_TLS_CERT_FILE", crt.as_path())],
    )
    .await
    .assert_failed_saying("CREDMESH_TLS_KEY_FILE");
}

/// Runs the operator CLI with only `tls` of the TLS variables set: exit code and the
/// whole output.
async fn cli_over(args: &[&str], tls: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(credmesh_bin());
    cmd.args(args);
    for var in TLS_VARS
        .iter()
        .chain(&["CREDMESH_ENDPOINT", "CREDMESH_PROFILE"])
    {
        cmd.env_remove(var);
    }
    cmd.envs(tls.iter().map(|(k, v)| (*k, *v)));
    let out = cmd.output().await.expect("running credmesh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn the_operator_cli_and_region_anchor_reach_identity_over_tls() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let mesh = ca("mesh");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &mesh.pem).unwrap();
    let (crt, key) = leaf(dir.path(), "tls", &mesh, &["localhost"]);
    let (operator, operator_file) = write_key(dir.path(), "operator.pem");
    let mut env = identity_env(
        dir.path(),
        &[
            ("CREDMESH_TLS_CERT_FILE", &crt),
            ("CREDMESH_TLS_KEY_FILE", &key),
        ],
    );
    env.push((
        "CREDMESH_BOOTSTRAP_OPERATOR_KEY".into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(operator.public_key_bytes()),
    ));
    let identity = Serve::start("identity", &env).await.unwrap();
    let trust: [(&str, &Path); 1] = [("CREDMESH_TLS_CA_FILE", &ca_file)];
    // The probe speaks TLS when it has the pod's certificate, as in the chart.
    let pod: [(&str, &Path); 3] = [
        ("CREDMESH_TLS_CERT_FILE", &crt),
        ("CREDMESH_TLS_KEY_FILE", &key),
        ("CREDMESH_TLS_CA_FILE", &ca_file),
    ];
    let ready = probe_until_passed(
        &identity.addr,
        &["--server-name", "localhost", "--service", IDENTITY],
        &pod,
    )
    .await;
    assert!(ready.passed(), "readiness over TLS: {ready:?}");

    let port = identity.addr.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}");
    let profile = dir.path().join("operator.toml");
    std::fs::write(
        &profile,
        format!("endpoint = \"{url}\"\nclient_id = \"operator\"\nkey_file = \"{operator_file}\"\n"),
    )
    .unwrap();
    let profile = profile.to_str().unwrap();

    // With the CA the services trust (CREDMESH_TLS_CA_FILE), as the chart's pods have it.
    let (code, out) = cli_over(
        &["identity", "clients", "list", "--profile", profile],
        &trust,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("operator"), "{out}");
    let (code, out) = cli_over(&["region", "anchor", "--endpoint", &url], &trust).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("region       SH"), "{out}");

    // Without it, the server's certificate is not trusted, and the error says so.
    let (code, out) = cli_over(&["identity", "clients", "list", "--profile", profile], &[]).await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains(&url) && out.contains("UnknownIssuer"), "{out}");

    identity.stop().await.unwrap();
}

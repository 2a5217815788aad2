//! The connection layer against real sockets: slow clients are cut off, normal ones
//! are served, and shutdown lets calls in flight finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use credmesh_auth::{Jwks, StaticJwks, TokenValidator, ValidatorConfig};
use credmesh_runtime::{Server, ServerConfig};
use credmesh_telemetry::metrics::Metrics;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn serve(config: ServerConfig) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let validator = TokenValidator::new(
        Arc::new(StaticJwks::new(Jwks::new([]))),
        ValidatorConfig::new("credmesh-identity:SH", ["credmesh"]),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(Server::new(config, Metrics::new(), validator).serve(
        vec![listener],
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_and_others_are_served() {
    let (addr, _stop) = serve(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;

    // Slowloris: a request line and then one header byte at a time, slower than allowed.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"a").await.is_err() {
                return;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(10), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => return, // the server answered (408) and will close
                Err(_) => {}         // nothing yet
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the slow client kept its connection for 10 s");

    // A client that sends its request at once is answered.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn the_header_timeout_is_configurable_and_never_zero() {
    let env = |v: &str| {
        std::collections::HashMap::from([(
            "CREDMESH_HEADER_READ_TIMEOUT_MS".to_string(),
            v.to_string(),
        )])
    };
    assert_eq!(
        ServerConfig::from_env(&env("2500"))
            .unwrap()
            .header_read_timeout,
        Duration::from_millis(2500)
    );
    assert!(ServerConfig::from_env(&env("0")).is_err());
    assert_eq!(
        ServerConfig::default().header_read_timeout,
        Duration::from_secs(10)
    );
}

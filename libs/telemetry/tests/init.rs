//! `init` installs a process-wide subscriber, so it gets a test binary (a process) of its own.

use std::collections::HashMap;

#[test]
fn init_without_an_otlp_endpoint_installs_logging_but_no_exporter_and_only_once() {
    let env = HashMap::from([("RUST_LOG".to_owned(), "warn".to_owned())]);

    let guard = credmesh_telemetry::init("identity", &env).expect("first init succeeds");
    assert!(guard.provider().is_none());
    tracing::warn!(client_secret = %credmesh_telemetry::Redacted("s3cret"), "logged once");

    let again = credmesh_telemetry::init("identity", &env);
    assert!(again.is_err(), "a second global subscriber is refused");

    // The test helper defers to what is already installed.
    credmesh_telemetry::init_for_tests();
    credmesh_telemetry::init_for_tests();
}

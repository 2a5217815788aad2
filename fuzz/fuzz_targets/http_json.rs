//! libFuzzer entry for [`credmesh_fuzz::http_json`] (the checks live there, so the committed
//! corpus and regressions replay under `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credmesh_fuzz::http_json(data));

//! libFuzzer entry for [`credmesh_fuzz::sd_jwt`] (the checks live there, so the committed
//! corpus and regressions replay under `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credmesh_fuzz::sd_jwt(data));

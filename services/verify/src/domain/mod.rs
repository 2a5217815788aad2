//! The gateway's rules, pure and unit-tested without a server: how a verification
//! becomes a partner answer (staleness bound, minimised disclosure) and the per-partner
//! rate limit.

pub mod answer;
pub mod rate;

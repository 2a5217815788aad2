//! The gateway's rules, pure and unit-tested without a server: how a verification
//! becomes a partner answer (staleness bound, minimised disclosure). The per-partner
//! rate limit is the serving stack's (`credmesh_runtime::rate`).

pub mod answer;

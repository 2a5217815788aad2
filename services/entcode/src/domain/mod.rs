//! The enterprise-code rules, free of I/O: which fields each scenario discloses, and
//! how codes and presentations are formed as credentials.

pub mod code;
pub mod scenario;
pub mod sdjwt;

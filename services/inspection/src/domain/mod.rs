//! Pure rules and formats: no I/O.

pub mod code;
pub mod input;
pub mod rules;

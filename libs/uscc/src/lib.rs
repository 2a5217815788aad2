//! Identifiers every credmesh credential is keyed by, validated once at the boundary.
//!
//! An enterprise is known everywhere by its Unified Social Credit Code (统一社会信用代码,
//! GB 32100-2015), and every license or certificate by a national e-license identifier
//! (GB/T 36904, as deployed). Both carry check characters; this crate applies every rule of
//! both standards, reports the first rule that fails with a stable machine reason, and hands
//! out types ([`Uscc`], [`LicenseId`]) that cannot hold an unchecked value. It also maps a
//! code's administrative division to the Yangtze River Delta [`Region`] whose trust anchor
//! vouches for it. Pure functions only: no I/O, no clock, no dependencies beyond `thiserror`.
//!
//! # Layout
//!
//! Modules are private; everything is re-exported at the root.
//!
//! - `uscc.rs`: [`Uscc`] and [`UsccError`]; the GB 11714 organisation-code check, the
//!   GB 32100-2015 position-18 check, the per-department category table and the audited
//!   pilot-code override.
//! - `region.rs`: [`Region`] and GB/T 2260 province prefixes of the federation partners.
//! - `license_id.rs`: [`LicenseId`] and [`LicenseIdError`], the dotted e-license identifier.
//! - `iso7064.rs`: [`mod37_36_check`] and [`mod37_36_is_valid`], the ISO/IEC 7064 MOD 37,36
//!   check-character system the identifier uses.

mod iso7064;
mod license_id;
mod region;
mod uscc;

pub use iso7064::{mod37_36_check, mod37_36_is_valid};
pub use license_id::{LicenseId, LicenseIdError};
pub use region::{Region, UnknownRegion};
pub use uscc::{Uscc, UsccError};

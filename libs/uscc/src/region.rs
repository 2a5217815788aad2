//! Yangtze River Delta regions, as read from a GB/T 2260 administrative division.
//!
//! Each partner region runs its own deployment and trust anchor, so the region a code was
//! registered in decides whose trust list vouches for its issuer. Only the four partner
//! provinces are named; every other division (including the national `100000`) is
//! [`Region::Other`].

use std::fmt;
use std::str::FromStr;

/// A region of the Yangtze River Delta federation, or [`Region::Other`] for everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// 上海市, divisions `31xxxx`.
    Shanghai,
    /// 江苏省, divisions `32xxxx`.
    Jiangsu,
    /// 浙江省, divisions `33xxxx`.
    Zhejiang,
    /// 安徽省, divisions `34xxxx`.
    Anhui,
    /// Any other province, or a national registration (`100000`).
    Other,
}

impl Region {
    /// The four federation partners, in division order.
    pub const PARTNERS: [Region; 4] = [
        Region::Shanghai,
        Region::Jiangsu,
        Region::Zhejiang,
        Region::Anhui,
    ];

    /// The short code used in configuration, trust lists and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Region::Shanghai => "SH",
            Region::Jiangsu => "JS",
            Region::Zhejiang => "ZJ",
            Region::Anhui => "AH",
            Region::Other => "OTHER",
        }
    }

    /// Reads a partner code (`SH`, `JS`, `ZJ`, `AH`), ignoring ASCII case.
    ///
    /// `OTHER` is deliberately not accepted: it names no deployment, so configuration that
    /// mentions it is a mistake worth reporting.
    pub fn from_code(code: &str) -> Option<Region> {
        Region::PARTNERS
            .into_iter()
            .find(|region| region.code().eq_ignore_ascii_case(code.trim()))
    }

    /// The first two digits of every GB/T 2260 division in this region.
    pub fn division_prefix(&self) -> Option<&'static str> {
        match self {
            Region::Shanghai => Some("31"),
            Region::Jiangsu => Some("32"),
            Region::Zhejiang => Some("33"),
            Region::Anhui => Some("34"),
            Region::Other => None,
        }
    }

    /// The region of a GB/T 2260 division such as `310115`; only the province digits count.
    pub fn from_division(division: &str) -> Region {
        Region::PARTNERS
            .into_iter()
            .find(|region| {
                region
                    .division_prefix()
                    .is_some_and(|prefix| division.starts_with(prefix))
            })
            .unwrap_or(Region::Other)
    }

    /// The official Chinese name, as printed on credentials.
    pub fn name_zh(&self) -> &'static str {
        match self {
            Region::Shanghai => "上海市",
            Region::Jiangsu => "江苏省",
            Region::Zhejiang => "浙江省",
            Region::Anhui => "安徽省",
            Region::Other => "其他地区",
        }
    }

    /// The English name, for partner-facing messages.
    pub fn name_en(&self) -> &'static str {
        match self {
            Region::Shanghai => "Shanghai",
            Region::Jiangsu => "Jiangsu",
            Region::Zhejiang => "Zhejiang",
            Region::Anhui => "Anhui",
            Region::Other => "Other",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A region code that is not one of `SH`, `JS`, `ZJ`, `AH`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown region code {found:?}, expected one of SH, JS, ZJ, AH")]
pub struct UnknownRegion {
    /// The code as given.
    pub found: String,
}

impl FromStr for Region {
    type Err = UnknownRegion;

    /// Same rules as [`Region::from_code`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::from_code(s).ok_or_else(|| UnknownRegion {
            found: s.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_divisions_map_to_their_region() {
        assert_eq!(Region::from_division("310115"), Region::Shanghai);
        assert_eq!(Region::from_division("320100"), Region::Jiangsu);
        assert_eq!(Region::from_division("330100"), Region::Zhejiang);
        assert_eq!(Region::from_division("340200"), Region::Anhui);
    }

    #[test]
    fn other_and_national_divisions_map_to_other() {
        assert_eq!(Region::from_division("440300"), Region::Other);
        assert_eq!(Region::from_division("100000"), Region::Other);
        assert_eq!(Region::from_division(""), Region::Other);
    }

    #[test]
    fn region_codes_round_trip_ignoring_case() {
        for region in Region::PARTNERS {
            assert_eq!(Region::from_code(region.code()), Some(region));
            assert_eq!(
                Region::from_code(&region.code().to_lowercase()),
                Some(region)
            );
            assert_eq!(region.to_string().parse::<Region>(), Ok(region));
            let prefix = region.division_prefix().unwrap();
            assert_eq!(Region::from_division(&format!("{prefix}0000")), region);
        }
    }

    #[test]
    fn other_is_not_a_configurable_region_code() {
        assert_eq!(Region::from_code("OTHER"), None);
        assert_eq!(Region::from_code("BJ"), None);
        let err = "bj".parse::<Region>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown region code \"bj\", expected one of SH, JS, ZJ, AH"
        );
        assert_eq!(Region::Other.division_prefix(), None);
    }

    #[test]
    fn regions_have_chinese_and_english_names() {
        assert_eq!(Region::Shanghai.name_zh(), "上海市");
        assert_eq!(Region::Anhui.name_en(), "Anhui");
    }
}

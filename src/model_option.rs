//! The option ticker fields of `option_summary`, split to fit the rings.

use std::fmt;

use super::{Decimal, InstrumentId, Stamps};

/// A short name stored inline (an option's underlying index, `ETH-30JUL21`,
/// `SYN.BTC-24SEP21`, `index_price`): at most 23 bytes, longer ones are cut.
#[derive(Copy, Clone, PartialEq, Eq, Default)]
pub struct ShortName {
    len: u8,
    bytes: [u8; 23],
}

impl ShortName {
    /// Copies `s`; a name over 23 bytes is cut (at a char boundary).
    pub fn new(s: &str) -> ShortName {
        let mut end = s.len().min(23);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; 23];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        ShortName {
            len: end as u8,
            bytes,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The fields of an option's ticker that tardis' `option_summary` carries, in two halves so
/// each fits a ring slot (sized by the largest [`Event`]); a venue parser emits half 0, then
/// half 1, of the same ticker back to back, and the fan-out joins them. Fields by half and
/// index: half 0: best bid price, best bid amount, bid IV, best ask price, best ask amount,
/// ask IV, last price, open interest; half 1: mark price, mark IV, delta, gamma, vega, theta,
/// rho, underlying price (and the underlying index). Absent fields are not in the mask.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct OptionHalf {
    /// The instrument.
    pub instrument: InstrumentId,
    /// 0 or 1.
    pub half: u8,
    /// Bit `i`: field `i` present.
    present: u8,
    decimals: [u8; 8],
    mantissas: [i64; 8],
    /// Half 1: the underlying index's name.
    pub underlying_index: ShortName,
    /// Time stamps (the venue's `timestamp`).
    pub stamps: Stamps,
}

impl OptionHalf {
    /// Half `half` of `instrument`'s ticker with `fields` (by the index above).
    pub fn new(
        instrument: InstrumentId,
        half: u8,
        fields: [Option<Decimal>; 8],
        underlying_index: ShortName,
        stamps: Stamps,
    ) -> OptionHalf {
        let mut h = OptionHalf {
            instrument,
            half,
            underlying_index,
            stamps,
            ..OptionHalf::default()
        };
        for (i, f) in fields.iter().enumerate() {
            if let Some(d) = f {
                h.present |= 1 << i;
                h.mantissas[i] = d.mantissa;
                h.decimals[i] = d.decimals;
            }
        }
        h
    }

    /// Field `i` (0..8), when present.
    pub fn field(&self, i: usize) -> Option<Decimal> {
        (i < 8 && self.present & (1 << i) != 0).then(|| Decimal {
            mantissa: self.mantissas[i],
            decimals: self.decimals[i],
        })
    }
}

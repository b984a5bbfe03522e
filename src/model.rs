//! Normalized market-data model: exchange ids, interned instruments, exact decimals and the
//! events every venue module produces.
//!
//! This module imports nothing of the crate. Every type here is `Copy` and fixed-size, so an
//! event can travel through a lock-free ring without allocation. Book updates are streamed as
//! a `BookBegin`, then one `Level` per price level, then a `BookEnd`, so a 1,000-level snapshot
//! needs no heap buffer on the hot path.

use std::fmt;

/// Dense id of an instrument, interned at start-up. Index into every per-instrument table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// The id as a table index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A client-facing exchange id, spelled as tardis-machine spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exchange {
    /// Binance USD-M futures (`fstream`).
    BinanceFutures,
    /// Binance COIN-M futures (`dstream`).
    BinanceDelivery,
    /// Binance spot.
    Binance,
    /// Bybit v5 `linear` and `inverse` categories.
    Bybit,
    /// Bybit v5 `spot` category.
    BybitSpot,
    /// OKX v5 spot instruments.
    Okex,
    /// OKX v5 dated futures.
    OkexFutures,
    /// OKX v5 perpetual swaps.
    OkexSwap,
    /// Deribit v2.
    Deribit,
}

impl Exchange {
    /// Every exchange id, in a fixed order.
    pub const ALL: [Exchange; 9] = [
        Exchange::BinanceFutures,
        Exchange::BinanceDelivery,
        Exchange::Binance,
        Exchange::Bybit,
        Exchange::BybitSpot,
        Exchange::Okex,
        Exchange::OkexFutures,
        Exchange::OkexSwap,
        Exchange::Deribit,
    ];

    /// The tardis-machine exchange id, e.g. `binance-futures`.
    pub fn id(self) -> &'static str {
        match self {
            Exchange::BinanceFutures => "binance-futures",
            Exchange::BinanceDelivery => "binance-delivery",
            Exchange::Binance => "binance",
            Exchange::Bybit => "bybit",
            Exchange::BybitSpot => "bybit-spot",
            Exchange::Okex => "okex",
            Exchange::OkexFutures => "okex-futures",
            Exchange::OkexSwap => "okex-swap",
            Exchange::Deribit => "deribit",
        }
    }

    /// Parses a tardis-machine exchange id; `None` for an id pinfeed does not serve.
    pub fn from_id(id: &str) -> Option<Exchange> {
        Exchange::ALL.into_iter().find(|e| e.id() == id)
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Why a decimal string could not become a [`Decimal`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// The text was empty.
    Empty,
    /// A character that is not part of a decimal number.
    Invalid,
    /// More than 18 significant digits, or a scale past 18 decimals: out of fixed-point range.
    Overflow,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Empty => "empty number",
            DecimalError::Invalid => "invalid number",
            DecimalError::Overflow => "number out of fixed-point range",
        })
    }
}

/// Largest number of fraction digits a [`Decimal`] or a book scale may carry.
pub const MAX_DECIMALS: u8 = 18;

const POW10: [i64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

/// `10^n` for `n <= 18`.
///
/// # Panics
/// Panics if `n > 18`.
#[inline]
pub fn pow10(n: u8) -> i64 {
    POW10[n as usize]
}

/// An exact decimal number: `mantissa * 10^-decimals`.
///
/// It keeps the number of fraction digits as the venue wrote them (`"0.50"` has mantissa 50 and
/// 2 decimals), so the exact text can be rebuilt, which OKX's checksum needs. Equality is
/// representational; use [`Decimal::cmp_value`] to compare values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Decimal {
    /// Digits as an integer, sign included.
    pub mantissa: i64,
    /// Fraction digits, `0..=18`.
    pub decimals: u8,
}

impl Decimal {
    /// Zero with no fraction digits.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        decimals: 0,
    };

    /// Builds a decimal from its parts.
    pub const fn new(mantissa: i64, decimals: u8) -> Decimal {
        Decimal { mantissa, decimals }
    }

    /// Parses decimal text: optional `-`/`+`, digits, optional `.digits`, optional exponent
    /// (`1e-7`, as JSON numbers may carry). No allocation.
    ///
    /// # Errors
    /// [`DecimalError::Empty`], [`DecimalError::Invalid`] for anything else, and
    /// [`DecimalError::Overflow`] past 18 digits of mantissa or 18 decimals.
    #[inline]
    pub fn parse(text: &[u8]) -> Result<Decimal, DecimalError> {
        // Fast path: `[-]digits[.digits]` with at most 18 digits, the shape of nearly every
        // venue number: no overflow is possible, so no per-digit checks.
        let (negative, body) = match text.first() {
            Some(b'-') => (true, &text[1..]),
            _ => (false, text),
        };
        if body.len() <= 19 {
            let mut mantissa: u64 = 0;
            let mut dot = usize::MAX;
            let mut plain = true;
            for (i, &c) in body.iter().enumerate() {
                let digit = c.wrapping_sub(b'0');
                if digit < 10 {
                    mantissa = mantissa * 10 + u64::from(digit);
                } else if c == b'.' && dot == usize::MAX {
                    dot = i;
                } else {
                    plain = false;
                    break;
                }
            }
            let digits = body.len() - usize::from(dot != usize::MAX);
            if plain && digits > 0 && digits <= 18 {
                let decimals = if dot == usize::MAX {
                    0
                } else {
                    (body.len() - dot - 1) as u8
                };
                let m = mantissa as i64;
                return Ok(Decimal {
                    mantissa: if negative { -m } else { m },
                    decimals,
                });
            }
        }
        Decimal::parse_slow(text)
    }

    #[cold]
    fn parse_slow(text: &[u8]) -> Result<Decimal, DecimalError> {
        if text.is_empty() {
            return Err(DecimalError::Empty);
        }
        let mut i = 0;
        let negative = match text[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i64 = 0;
        let mut decimals: i32 = 0;
        let mut digits = 0usize;
        let mut seen_dot = false;
        let mut any_digit = false;
        while i < text.len() {
            let c = text[i];
            match c {
                b'0'..=b'9' => {
                    any_digit = true;
                    if mantissa != 0 || c != b'0' {
                        digits += 1;
                    }
                    if digits > 18 {
                        return Err(DecimalError::Overflow);
                    }
                    mantissa = mantissa * 10 + i64::from(c - b'0');
                    if seen_dot {
                        decimals += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return Err(DecimalError::Invalid),
            }
            i += 1;
        }
        if !any_digit {
            return Err(DecimalError::Invalid);
        }
        if i < text.len() {
            // exponent
            i += 1;
            let mut exp_negative = false;
            if i < text.len() && (text[i] == b'-' || text[i] == b'+') {
                exp_negative = text[i] == b'-';
                i += 1;
            }
            if i == text.len() {
                return Err(DecimalError::Invalid);
            }
            let mut exp: i32 = 0;
            while i < text.len() {
                let c = text[i];
                if !c.is_ascii_digit() {
                    return Err(DecimalError::Invalid);
                }
                exp = exp.saturating_mul(10).saturating_add(i32::from(c - b'0'));
                i += 1;
            }
            if exp_negative {
                decimals = decimals.saturating_add(exp);
            } else {
                decimals = decimals.saturating_sub(exp);
            }
        }
        if decimals < 0 {
            // positive exponent: scale the mantissa up
            let up = (-decimals) as u32;
            if up > 18 {
                if mantissa == 0 {
                    decimals = 0;
                } else {
                    return Err(DecimalError::Overflow);
                }
            } else {
                mantissa = mantissa
                    .checked_mul(POW10[up as usize])
                    .ok_or(DecimalError::Overflow)?;
                decimals = 0;
            }
        }
        if decimals > i32::from(MAX_DECIMALS) {
            return Err(DecimalError::Overflow);
        }
        Ok(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            decimals: decimals as u8,
        })
    }

    /// Converts a JSON number that a venue sent as a double (Deribit) into the shortest decimal
    /// that round-trips to it, which is the text the venue wrote. No allocation.
    ///
    /// # Errors
    /// [`DecimalError::Invalid`] for NaN or infinity; [`DecimalError::Overflow`] out of range.
    pub fn from_f64(value: f64) -> Result<Decimal, DecimalError> {
        if !value.is_finite() {
            return Err(DecimalError::Invalid);
        }
        let mut buf = ryu::Buffer::new();
        Decimal::parse(buf.format_finite(value).as_bytes())
    }

    /// True when the value is zero, whatever the scale.
    #[inline]
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// The value as an integer count of `10^-scale` units.
    ///
    /// # Errors
    /// `Err(needed)` when the value has non-zero digits past `scale` (the caller must widen its
    /// scale to `needed`), or [`DecimalError::Overflow`] as `Err(u8::MAX)` when the result does
    /// not fit an `i64`.
    #[inline]
    pub fn to_scaled(self, scale: u8) -> Result<i64, u8> {
        if self.decimals <= scale {
            self.mantissa
                .checked_mul(POW10[(scale - self.decimals) as usize])
                .ok_or(u8::MAX)
        } else {
            let div = POW10[(self.decimals - scale) as usize];
            if self.mantissa % div == 0 {
                Ok(self.mantissa / div)
            } else {
                Err(self.significant_decimals())
            }
        }
    }

    /// Fraction digits once trailing zeros are dropped.
    pub fn significant_decimals(self) -> u8 {
        let mut m = self.mantissa;
        let mut d = self.decimals;
        while d > 0 && m % 10 == 0 {
            m /= 10;
            d -= 1;
        }
        d
    }

    /// Compares by value, whatever the scales.
    pub fn cmp_value(self, other: Decimal) -> std::cmp::Ordering {
        let d = self.decimals.max(other.decimals);
        let a = i128::from(self.mantissa) * i128::from(POW10[(d - self.decimals) as usize]);
        let b = i128::from(other.mantissa) * i128::from(POW10[(d - other.decimals) as usize]);
        a.cmp(&b)
    }

    /// Writes the exact text (`"0.50"` stays `"0.50"`) into `out`. No allocation beyond `out`.
    pub fn write_exact(self, out: &mut Vec<u8>) {
        write_scaled(out, self.mantissa, self.decimals, false);
    }

    /// Writes the shortest text of the value (`"0.50"` becomes `"0.5"`, `"7.00"` becomes `"7"`).
    pub fn write_trimmed(self, out: &mut Vec<u8>) {
        write_scaled(out, self.mantissa, self.decimals, true);
    }
}

/// Writes `mantissa * 10^-decimals` as decimal text; `trim` drops trailing fraction zeros.
pub fn write_scaled(out: &mut Vec<u8>, mantissa: i64, decimals: u8, trim: bool) {
    let negative = mantissa < 0;
    let abs = mantissa.unsigned_abs();
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(abs).as_bytes();
    if negative {
        out.push(b'-');
    }
    let d = decimals as usize;
    if d == 0 {
        out.extend_from_slice(digits);
        return;
    }
    let (int_part, frac): (&[u8], usize) = if digits.len() > d {
        (&digits[..digits.len() - d], d)
    } else {
        (b"0", d)
    };
    out.extend_from_slice(int_part);
    // fraction digits, left-padded with zeros
    let mut frac_digits = [b'0'; 18];
    let src = &digits[digits.len().saturating_sub(d)..];
    frac_digits[frac - src.len()..frac].copy_from_slice(src);
    let mut end = frac;
    if trim {
        while end > 0 && frac_digits[end - 1] == b'0' {
            end -= 1;
        }
    }
    if end > 0 {
        out.push(b'.');
        out.extend_from_slice(&frac_digits[..end]);
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(24);
        self.write_exact(&mut v);
        f.write_str(std::str::from_utf8(&v).unwrap_or("?"))
    }
}

/// Time stamps every event carries, in nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Stamps {
    /// Venue event time, unix ns; 0 when the venue gives none.
    pub exch_ts_ns: i64,
    /// Wall clock at socket read (or the recorded arrival time in a replay), unix ns.
    pub recv_ts_ns: i64,
    /// Monotonic clock at socket read, ns since an arbitrary origin; 0 in a replay.
    pub recv_mono_ns: u64,
    /// Ingest ring push, as ns after `recv_mono_ns` (saturating at `u32::MAX`, at least 1);
    /// 0: not stamped (replay, stamping off). Offsets keep `Event` small.
    pub push_delta_ns: u32,
    /// Book applied, as ns after `recv_mono_ns` (saturating at `u32::MAX`, at least 1); 0:
    /// not stamped.
    pub applied_delta_ns: u32,
}

/// Taker (aggressor) side of a trade, or the side of a liquidation order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// Buyer was the aggressor (a short position liquidated, for liquidations).
    Buy,
    /// Seller was the aggressor (a long position liquidated, for liquidations).
    Sell,
    /// The venue did not say.
    Unknown,
}

impl Side {
    /// `buy`, `sell` or `unknown`, as tardis-machine writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
            Side::Unknown => "unknown",
        }
    }
}

/// Side of the book.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BookSide {
    /// Resting buy orders.
    Bid,
    /// Resting sell orders.
    Ask,
}

/// A short id (trade id, liquidation id) stored inline: at most 47 bytes, longer ids are cut.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ShortId {
    len: u8,
    bytes: [u8; 47],
}

impl ShortId {
    /// Copies `s`; an id over 47 bytes is cut (at a char boundary).
    pub fn new(s: &str) -> ShortId {
        let mut end = s.len().min(47);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; 47];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        ShortId {
            len: end as u8,
            bytes,
        }
    }

    /// Formats an integer id.
    pub fn from_u64(v: u64) -> ShortId {
        let mut buf = itoa::Buffer::new();
        ShortId::new(buf.format(v))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The sequence numbers a book message carries, in each venue's own terms. The venue module's
/// sync rule interprets them; the book engine only stores the last one applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Sequence {
    /// The message carries no sequence (OKX `books` before 2026: the checksum guards it).
    #[default]
    None,
    /// Binance `U`/`u`/`pu` (`pu` only on futures); a REST snapshot has
    /// `first_update_id == last_update_id == lastUpdateId`.
    Binance {
        /// `U`: first update id in the event.
        first_update_id: u64,
        /// `u`: final update id in the event.
        last_update_id: u64,
        /// `pu`: final update id of the previous event (futures only).
        prev_update_id: Option<u64>,
    },
    /// Bybit v5 `u` (per-symbol update id) and `seq` (cross sequence).
    Bybit {
        /// `u`.
        update_id: u64,
        /// `seq`.
        cross_seq: u64,
    },
    /// OKX v5 `seqId`/`prevSeqId`.
    Okx {
        /// `seqId`.
        seq_id: i64,
        /// `prevSeqId`; `-1` on snapshots.
        prev_seq_id: i64,
    },
    /// Deribit `change_id`/`prev_change_id`.
    Deribit {
        /// `change_id`.
        change_id: u64,
        /// `prev_change_id`; absent on snapshots.
        prev_change_id: Option<u64>,
    },
}

impl Sequence {
    /// The venue's update id of the message, as one number: Binance `u`, Bybit `u`, OKX
    /// `seqId`, Deribit `change_id`; 0 without one.
    pub fn update_id(&self) -> u64 {
        match *self {
            Sequence::None => 0,
            Sequence::Binance { last_update_id, .. } => last_update_id,
            Sequence::Bybit { update_id, .. } => update_id,
            Sequence::Okx { seq_id, .. } => seq_id.max(0) as u64,
            Sequence::Deribit { change_id, .. } => change_id,
        }
    }
}

/// Start of one book message: a snapshot (replace the book) or a delta (absolute level sizes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BookBegin {
    /// The book.
    pub instrument: InstrumentId,
    /// True: discard the book and replace it with the levels that follow.
    pub is_snapshot: bool,
    /// The venue's sequence numbers.
    pub seq: Sequence,
    /// Time stamps.
    pub stamps: Stamps,
}

/// One price level of the current book message. `qty` is absolute; zero deletes the level.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// Bid or ask.
    pub side: BookSide,
    /// Price, exact as sent.
    pub price: Decimal,
    /// Size at that price, exact as sent; zero deletes.
    pub qty: Decimal,
}

/// End of one book message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BookEnd {
    /// The book.
    pub instrument: InstrumentId,
    /// The venue's checksum of the book after this message (OKX CRC32), when it sent one.
    pub checksum: Option<i32>,
    /// True when the message could not be parsed to its end: its levels are incomplete and
    /// the book must resync.
    pub aborted: bool,
}

/// A public trade.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Trade {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Venue trade id, when it has one.
    pub id: Option<ShortId>,
    /// Price.
    pub price: Decimal,
    /// Size in the venue's native unit.
    pub qty: Decimal,
    /// Aggressor side.
    pub side: Side,
    /// Time stamps.
    pub stamps: Stamps,
}

/// The venue's own best bid/offer feed. Absent fields were not in the message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BookTicker {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Book update id the ticker reflects (Binance `u`), when given.
    pub update_id: Option<u64>,
    /// Best bid price.
    pub bid_price: Option<Decimal>,
    /// Best bid size.
    pub bid_qty: Option<Decimal>,
    /// Best ask price.
    pub ask_price: Option<Decimal>,
    /// Best ask size.
    pub ask_qty: Option<Decimal>,
    /// Time stamps.
    pub stamps: Stamps,
}

/// A derivative ticker update. Only the fields the message carried are set; the book engine
/// merges them into per-instrument state (Bybit deltas carry changed fields only).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct DerivativeTicker {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Last traded price.
    pub last_price: Option<Decimal>,
    /// Open interest in the venue's native unit.
    pub open_interest: Option<Decimal>,
    /// Current funding rate.
    pub funding_rate: Option<Decimal>,
    /// Next funding time, unix ns.
    pub funding_ts_ns: Option<i64>,
    /// Predicted next funding rate.
    pub predicted_funding_rate: Option<Decimal>,
    /// Index price.
    pub index_price: Option<Decimal>,
    /// Mark price.
    pub mark_price: Option<Decimal>,
    /// Best bid price, when the ticker carries it (Deribit, Bybit).
    pub best_bid_price: Option<Decimal>,
    /// Best bid size.
    pub best_bid_qty: Option<Decimal>,
    /// Best ask price.
    pub best_ask_price: Option<Decimal>,
    /// Best ask size.
    pub best_ask_qty: Option<Decimal>,
    /// Time stamps.
    pub stamps: Stamps,
}

/// A [`DerivativeTicker`] packed for the rings: the present fields' mantissas and scales in
/// arrays with a presence mask, 136 bytes instead of 304, so every ring slot (sized by the
/// largest [`Event`]) halves. Venue parsers build a `DerivativeTicker` and pack it; the book
/// thread unpacks it to merge. Absent fields are stored as zeros, so `==` compares values as
/// written (like `DerivativeTicker`'s).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct PackedTicker {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Bit `i` set: decimal field `i` (order of [`PackedTicker::unpack`]) is present; bit 10:
    /// the funding time is.
    present: u16,
    decimals: [u8; 10],
    mantissas: [i64; 10],
    funding_ts_ns: i64,
    /// Time stamps.
    pub stamps: Stamps,
}

/// Bit of the funding time in [`PackedTicker`]'s presence mask.
const FUNDING_TS_BIT: u16 = 1 << 10;

impl PackedTicker {
    /// Packs `t`; lossless ([`PackedTicker::unpack`] gives `t` back).
    pub fn pack(t: &DerivativeTicker) -> PackedTicker {
        let mut p = PackedTicker {
            instrument: t.instrument,
            stamps: t.stamps,
            ..PackedTicker::default()
        };
        for (i, v) in t.decimal_fields().into_iter().enumerate() {
            if let Some(d) = v {
                p.present |= 1 << i;
                p.mantissas[i] = d.mantissa;
                p.decimals[i] = d.decimals;
            }
        }
        if let Some(ts) = t.funding_ts_ns {
            p.present |= FUNDING_TS_BIT;
            p.funding_ts_ns = ts;
        }
        p
    }

    /// The ticker with its optional fields.
    pub fn unpack(&self) -> DerivativeTicker {
        let f = |i: usize| {
            (self.present & (1 << i) != 0).then_some(Decimal {
                mantissa: self.mantissas[i],
                decimals: self.decimals[i],
            })
        };
        DerivativeTicker {
            instrument: self.instrument,
            last_price: f(0),
            open_interest: f(1),
            funding_rate: f(2),
            funding_ts_ns: (self.present & FUNDING_TS_BIT != 0).then_some(self.funding_ts_ns),
            predicted_funding_rate: f(3),
            index_price: f(4),
            mark_price: f(5),
            best_bid_price: f(6),
            best_bid_qty: f(7),
            best_ask_price: f(8),
            best_ask_qty: f(9),
            stamps: self.stamps,
        }
    }
}

impl DerivativeTicker {
    /// The decimal fields in [`PackedTicker`]'s order.
    fn decimal_fields(&self) -> [Option<Decimal>; 10] {
        [
            self.last_price,
            self.open_interest,
            self.funding_rate,
            self.predicted_funding_rate,
            self.index_price,
            self.mark_price,
            self.best_bid_price,
            self.best_bid_qty,
            self.best_ask_price,
            self.best_ask_qty,
        ]
    }
}

impl From<DerivativeTicker> for PackedTicker {
    fn from(t: DerivativeTicker) -> PackedTicker {
        PackedTicker::pack(&t)
    }
}

impl From<PackedTicker> for DerivativeTicker {
    fn from(p: PackedTicker) -> DerivativeTicker {
        p.unpack()
    }
}

/// A liquidation order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Liquidation {
    /// The instrument.
    pub instrument: InstrumentId,
    /// Venue id, when it has one.
    pub id: Option<ShortId>,
    /// Price.
    pub price: Decimal,
    /// Size in the venue's native unit.
    pub qty: Decimal,
    /// `Buy`: a short position was liquidated; `Sell`: a long one.
    pub side: Side,
    /// Time stamps.
    pub stamps: Stamps,
}

/// A normalized event. Fixed-size and `Copy`: it travels through rings by value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A public trade.
    Trade(Trade),
    /// Start of a book message; `Level`s and a `BookEnd` follow.
    BookBegin(BookBegin),
    /// One level of the current book message.
    Level(Level),
    /// End of the current book message.
    BookEnd(BookEnd),
    /// The venue's best bid/offer feed.
    BookTicker(BookTicker),
    /// Open interest, funding, mark and index prices (packed: unpack to read the fields).
    DerivativeTicker(PackedTicker),
    /// A liquidation.
    Liquidation(Liquidation),
    /// Half of an option ticker's `option_summary` fields (Deribit).
    OptionHalf(OptionHalf),
}

impl Event {
    /// A `DerivativeTicker` event: packs `t`.
    pub fn ticker(t: DerivativeTicker) -> Event {
        Event::DerivativeTicker(PackedTicker::pack(&t))
    }

    /// The instrument the event is about.
    pub fn instrument(&self) -> InstrumentId {
        match self {
            Event::Trade(e) => e.instrument,
            Event::BookBegin(e) => e.instrument,
            Event::Level(_) => InstrumentId(u32::MAX),
            Event::BookEnd(e) => e.instrument,
            Event::BookTicker(e) => e.instrument,
            Event::DerivativeTicker(e) => e.instrument,
            Event::Liquidation(e) => e.instrument,
            Event::OptionHalf(e) => e.instrument,
        }
    }
}

/// What a venue's sync rule says of the next book message, given the last one applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncVerdict {
    /// It continues the chain: apply it.
    Apply,
    /// It is older than the book (already covered by the snapshot or a previous message):
    /// drop it, the book stays synced.
    Stale,
    /// Messages are missing between the book and it: the book must resync.
    Gap,
    /// It restarts the chain (Bybit `u = 1`): clear the book and apply it as a snapshot.
    Reset,
}

/// A venue's book sync rule: `last` is the sequence of the last message applied (the snapshot
/// itself when `after_snapshot`), `next` the message to check.
pub type SyncRule = fn(last: &Sequence, after_snapshot: bool, next: &Sequence) -> SyncVerdict;

/// A venue's book checksum over the top levels of each side, best first, exact as sent
/// (OKX's CRC32 over `price:size` strings).
pub type ChecksumFn = fn(bids: &[(Decimal, Decimal)], asks: &[(Decimal, Decimal)]) -> i32;

/// Instruments interned at start-up: `(exchange, symbol)` to a dense [`InstrumentId`].
///
/// Symbols are stored upper case, as the venues send them; lookups are exact. Interning
/// allocates; lookups do not, and hash with FxHash (symbols are not attacker-chosen keys
/// here: only interned ones are stored, an unknown symbol is a miss).
#[derive(Default, Debug, Clone)]
pub struct Instruments {
    by_exchange: [rustc_hash::FxHashMap<Box<str>, InstrumentId>; 9],
    names: Vec<(Exchange, Box<str>)>,
}

impl Instruments {
    /// An empty registry.
    pub fn new() -> Instruments {
        Instruments::default()
    }

    /// Interns `(exchange, symbol)`, returning the existing id when it is already known.
    pub fn intern(&mut self, exchange: Exchange, symbol: &str) -> InstrumentId {
        let map = &mut self.by_exchange[exchange as usize];
        if let Some(id) = map.get(symbol) {
            return *id;
        }
        let id = InstrumentId(self.names.len() as u32);
        map.insert(symbol.into(), id);
        self.names.push((exchange, symbol.into()));
        id
    }

    /// Looks up an interned instrument. No allocation.
    #[inline]
    pub fn get(&self, exchange: Exchange, symbol: &str) -> Option<InstrumentId> {
        self.by_exchange[exchange as usize].get(symbol).copied()
    }

    /// Exchange and symbol of an id.
    ///
    /// # Panics
    /// Panics if `id` was not issued by this registry.
    pub fn name(&self, id: InstrumentId) -> (Exchange, &str) {
        let (e, s) = &self.names[id.index()];
        (*e, s)
    }

    /// Number of interned instruments; ids run `0..len()`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every instrument with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (InstrumentId, Exchange, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, (e, s))| (InstrumentId(i as u32), *e, &**s))
    }
}

/// Milliseconds since the epoch to nanoseconds, saturating.
#[inline]
pub fn ms_to_ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

#[path = "model_option.rs"]
mod option;
pub use option::{OptionHalf, ShortName};

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;

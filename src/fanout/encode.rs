//! Encodes normalized events as tardis-machine JSON messages (`trade`, `book_change`,
//! `book_ticker`, `derivative_ticker`, `liquidation`, `book_snapshot`, `disconnect`, `error`)
//! and pinfeed's opt-in messages (`book_invalid`, `imbalance`), byte-exact to its wire format:
//! numbers as JSON numbers in JavaScript's shortest form, ids as strings, ISO-8601 UTC
//! timestamps, absent fields omitted (never `null`). Reference: `PROTOCOL.md` section 2.
//!
//! Encoding appends to a caller-owned `Vec<u8>`; once it has grown to the largest message no
//! allocation happens.

use crate::book::TickerState;
use crate::model::{BookSide, BookTicker, Decimal, Exchange, Level, Liquidation, Trade};

/// Appends a JSON string literal (escaping `"`, `\` and control characters).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends a decimal as JavaScript's `Number(text)` would print it: shortest form, trailing
/// zeros dropped, exponent notation below 1e-6 (`4e-7`, `1.5e-7`).
pub fn write_number(out: &mut Vec<u8>, d: Decimal) {
    let sig = d.significant_decimals();
    let m = if sig < d.decimals {
        d.mantissa / crate::model::pow10(d.decimals - sig)
    } else {
        d.mantissa
    };
    if m == 0 {
        out.push(b'0');
        return;
    }
    // value = m * 10^-sig; JS switches to exponent notation when |value| < 1e-6
    let digits = count_digits(m.unsigned_abs());
    let exponent = digits as i32 - 1 - i32::from(sig); // position of the leading digit
    if exponent < -6 {
        if m < 0 {
            out.push(b'-');
        }
        let mut buf = itoa::Buffer::new();
        let s = buf.format(m.unsigned_abs()).as_bytes();
        out.push(s[0]);
        if s.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&s[1..]);
        }
        out.extend_from_slice(b"e-");
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(-exponent).as_bytes());
    } else {
        crate::model::write_scaled(out, m, sig, true);
    }
}

/// A `fmt::Write` into a fixed stack buffer (what does not fit is an error).
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> std::fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > N {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends an IEEE double as JavaScript's `JSON.stringify` prints it (ECMA-262
/// `Number::toString`): the shortest digits that round-trip, plain notation for decimal
/// exponents -7 < e < 21 (`0.000001`, `123456789012345680000`), else `1.5e-7`, `1e+21`;
/// `-0` as `0`; NaN and infinities as `null`. No allocation.
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    use std::fmt::Write as _;
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if x == 0.0 {
        out.push(b'0');
        return;
    }
    // Rust's `{:e}` of a double is its shortest round-trip digits: `-1.2345e-7`, `5e3`
    let mut t = StackText::<40> {
        buf: [0; 40],
        len: 0,
    };
    if write!(t, "{:e}", x.abs()).is_err() {
        out.extend_from_slice(b"null");
        return;
    }
    let text = &t.buf[..t.len];
    let Some(e_at) = text.iter().position(|&c| c == b'e') else {
        out.extend_from_slice(b"null");
        return;
    };
    let mut digits = [0u8; 24];
    let mut k = 0;
    for &c in &text[..e_at] {
        if c.is_ascii_digit() && k < digits.len() {
            digits[k] = c;
            k += 1;
        }
    }
    let exp: i32 = std::str::from_utf8(&text[e_at + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let digits = &digits[..k];
    // ECMA-262: value = 0.d1d2...dk * 10^n
    let n = exp + 1;
    let k = k as i32;
    if x < 0.0 {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n) as usize));
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format((n - 1).unsigned_abs()).as_bytes());
    }
}

fn count_digits(mut v: u64) -> u32 {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Appends unix ns as a quoted ISO-8601 UTC time: 3 fraction digits when the time is a whole
/// millisecond (or `millis_only`), else 6 (microseconds), as tardis-machine prints them.
pub fn write_timestamp(out: &mut Vec<u8>, unix_ns: i64, millis_only: bool) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    out.push(b'"');
    let mut year = [b'0'; 4];
    let mut yv = y.clamp(0, 9999);
    for slot in year.iter_mut().rev() {
        *slot = b'0' + (yv % 10) as u8;
        yv /= 10;
    }
    out.extend_from_slice(&year);
    let two = |out: &mut Vec<u8>, sep: u8, v: i64| {
        out.push(sep);
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, b'-', mo);
    two(out, b'-', d);
    two(out, b'T', sod / 3600);
    two(out, b':', sod / 60 % 60);
    two(out, b':', sod % 60);
    out.push(b'.');
    let micros = nanos / 1000;
    let (value, width) = if millis_only || micros % 1000 == 0 {
        (micros / 1000, 3)
    } else {
        (micros, 6)
    };
    let mut digits = [b'0'; 6];
    let mut v = value;
    for i in (0..width).rev() {
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits[..width]);
    out.extend_from_slice(b"Z\"");
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01, proleptic Gregorian.
/// Algorithm: Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms", `days_from_civil`.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The fields of an `option_summary` that its symbol gives, as JSON to splice after the
/// head: `,"optionType":"put","strikePrice":8000,"expirationDate":"2021-09-24T08:00:00.000Z"`
/// for `BTC-24SEP21-8000-P`. As tardis-node's `DeribitOptionSummaryMapper` reads a Deribit
/// option name `{base}-{DMMMYY}-{strike}-{C|P}`: `P` is a put, anything else a call; a `d` in
/// the strike is its decimal point (`1d02`); expiry at 08:00 UTC of that day
/// (<https://docs.deribit.com/#public-get_instruments>, `instrument_name`). `None` for a
/// symbol of another shape.
pub fn option_static(symbol: &str) -> Option<String> {
    let parts: Vec<&str> = symbol.split('-').collect();
    if parts.len() < 4 {
        return None;
    }
    let date = parts[1].as_bytes();
    let split = date.iter().position(|c| c.is_ascii_alphabetic())?;
    if !(1..=2).contains(&split) || date.len() != split + 5 {
        return None;
    }
    let day: i64 = parts[1][..split].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let month = parts[1][split..split + 3].to_ascii_uppercase();
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = 2000 + parts[1][split + 3..].parse::<i64>().ok()?;
    if !(1..=31).contains(&day) {
        return None;
    }
    // the venue writes `1d02`, pinfeed's upper-cased symbol `1D02`
    let strike = Decimal::parse(parts[2].replace(['d', 'D'], ".").as_bytes()).ok()?;
    let expiry_ns = (days_from_civil(year, month, day) * 86_400 + 8 * 3600) * 1_000_000_000;
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b",\"optionType\":\"");
    out.extend_from_slice(if parts[3] == "P" { b"put" } else { b"call" });
    out.extend_from_slice(b"\",\"strikePrice\":");
    write_number(&mut out, strike);
    out.extend_from_slice(b",\"expirationDate\":");
    write_timestamp(&mut out, expiry_ns, true);
    String::from_utf8(out).ok()
}

/// An `option_summary` message (tardis-node `DeribitOptionSummaryMapper`, fields in its
/// order): `static_fields` from [`option_static`], then the ticker's two halves. The best
/// bid/ask prices, amounts and IVs and the last price are left out when absent or 0 (its
/// `asNumberIfValid`); the others when absent.
pub fn option_summary(
    out: &mut Vec<u8>,
    exchange: Exchange,
    symbol: &str,
    static_fields: &str,
    a: &crate::model::OptionHalf,
    b: &crate::model::OptionHalf,
    recv_ts_ns: i64,
) {
    head(out, "option_summary", exchange, symbol);
    out.extend_from_slice(static_fields.as_bytes());
    const A: [&str; 8] = [
        "bestBidPrice",
        "bestBidAmount",
        "bestBidIV",
        "bestAskPrice",
        "bestAskAmount",
        "bestAskIV",
        "lastPrice",
        "openInterest",
    ];
    const B: [&str; 8] = [
        "markPrice",
        "markIV",
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        "underlyingPrice",
    ];
    for (i, name) in A.iter().enumerate() {
        // the first seven: asNumberIfValid drops a 0
        let v = a.field(i).filter(|d| i == 7 || !d.is_zero());
        field_number(out, name, v);
    }
    for (i, name) in B.iter().enumerate() {
        field_number(out, name, b.field(i));
    }
    let index = b.underlying_index.as_str();
    if !index.is_empty() {
        out.extend_from_slice(b",\"underlyingIndex\":");
        write_str(out, index);
    }
    times(out, a.stamps.exch_ts_ns, recv_ts_ns);
    out.push(b'}');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Algorithm: Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn head(out: &mut Vec<u8>, kind: &str, exchange: Exchange, symbol: &str) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"symbol\":");
    write_str(out, symbol);
    out.extend_from_slice(b",\"exchange\":\"");
    out.extend_from_slice(exchange.id().as_bytes());
    out.push(b'"');
}

fn field_number(out: &mut Vec<u8>, name: &str, v: Option<Decimal>) {
    if let Some(v) = v {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_number(out, v);
    }
}

fn times(out: &mut Vec<u8>, exch_ts_ns: i64, recv_ts_ns: i64) {
    out.extend_from_slice(b",\"timestamp\":");
    // tardis: the exchange time, falling back to the local time when the venue gives none
    // (then the same instant as `localTimestamp`, to the ms: a Binance spot REST snapshot's
    // `timestamp` once printed microseconds its `localTimestamp` did not, so it came after it)
    let (ts, millis_only) = if exch_ts_ns != 0 {
        (exch_ts_ns, false)
    } else {
        (recv_ts_ns, true)
    };
    write_timestamp(out, ts, millis_only);
    out.extend_from_slice(b",\"localTimestamp\":");
    write_timestamp(out, recv_ts_ns, true);
}

/// A `trade` message.
pub fn trade(out: &mut Vec<u8>, exchange: Exchange, symbol: &str, t: &Trade) {
    head(out, "trade", exchange, symbol);
    if let Some(id) = &t.id {
        out.extend_from_slice(b",\"id\":");
        write_str(out, id.as_str());
    }
    field_number(out, "price", Some(t.price));
    field_number(out, "amount", Some(t.qty));
    out.extend_from_slice(b",\"side\":\"");
    out.extend_from_slice(t.side.as_str().as_bytes());
    out.push(b'"');
    times(out, t.stamps.exch_ts_ns, t.stamps.recv_ts_ns);
    out.push(b'}');
}

/// A `liquidation` message.
pub fn liquidation(out: &mut Vec<u8>, exchange: Exchange, symbol: &str, l: &Liquidation) {
    head(out, "liquidation", exchange, symbol);
    if let Some(id) = &l.id {
        out.extend_from_slice(b",\"id\":");
        write_str(out, id.as_str());
    }
    field_number(out, "price", Some(l.price));
    field_number(out, "amount", Some(l.qty));
    out.extend_from_slice(b",\"side\":\"");
    out.extend_from_slice(l.side.as_str().as_bytes());
    out.push(b'"');
    times(out, l.stamps.exch_ts_ns, l.stamps.recv_ts_ns);
    out.push(b'}');
}

/// A `book_ticker` message.
pub fn book_ticker(out: &mut Vec<u8>, exchange: Exchange, symbol: &str, t: &BookTicker) {
    head(out, "book_ticker", exchange, symbol);
    field_number(out, "askAmount", t.ask_qty);
    field_number(out, "askPrice", t.ask_price);
    field_number(out, "bidPrice", t.bid_price);
    field_number(out, "bidAmount", t.bid_qty);
    times(out, t.stamps.exch_ts_ns, t.stamps.recv_ts_ns);
    out.push(b'}');
}

/// A `derivative_ticker` message from merged state (every last-known field).
pub fn derivative_ticker(out: &mut Vec<u8>, exchange: Exchange, symbol: &str, s: &TickerState) {
    let m = &s.merged;
    head(out, "derivative_ticker", exchange, symbol);
    field_number(out, "lastPrice", m.last_price);
    field_number(out, "openInterest", m.open_interest);
    field_number(out, "fundingRate", m.funding_rate);
    if let Some(ts) = m.funding_ts_ns {
        out.extend_from_slice(b",\"fundingTimestamp\":");
        write_timestamp(out, ts, false);
    }
    field_number(out, "predictedFundingRate", m.predicted_funding_rate);
    field_number(out, "indexPrice", m.index_price);
    field_number(out, "markPrice", m.mark_price);
    times(out, s.max_exch_ts_ns, m.stamps.recv_ts_ns);
    out.push(b'}');
}

/// Builds one `book_change` message from a streamed book message (levels arrive in venue
/// order, bids and asks interleaved). Reuses its buffers.
#[derive(Default)]
pub struct BookChangeWriter {
    bids: Vec<u8>,
    asks: Vec<u8>,
}

impl BookChangeWriter {
    /// Starts a new message.
    pub fn begin(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Adds one level.
    pub fn level(&mut self, l: &Level) {
        let buf = match l.side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        if !buf.is_empty() {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"price\":");
        write_number(buf, l.price);
        buf.extend_from_slice(b",\"amount\":");
        write_number(buf, l.qty);
        buf.push(b'}');
    }

    /// Appends the finished `book_change` message to `out`.
    pub fn finish(
        &self,
        out: &mut Vec<u8>,
        exchange: Exchange,
        symbol: &str,
        is_snapshot: bool,
        exch_ts_ns: i64,
        recv_ts_ns: i64,
    ) {
        head(out, "book_change", exchange, symbol);
        out.extend_from_slice(if is_snapshot {
            b",\"isSnapshot\":true,\"bids\":["
        } else {
            b",\"isSnapshot\":false,\"bids\":["
        });
        out.extend_from_slice(&self.bids);
        out.extend_from_slice(b"],\"asks\":[");
        out.extend_from_slice(&self.asks);
        out.push(b']');
        times(out, exch_ts_ns, recv_ts_ns);
        out.push(b'}');
    }
}

/// One level of a `book_snapshot`: `None` is a missing level (written `{}`).
pub trait SnapshotLevel {
    /// Appends `{"price":P,"amount":A}` or `{}`.
    fn write(&self, out: &mut Vec<u8>);
}

impl SnapshotLevel for Option<(Decimal, Decimal)> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Some((price, amount)) => {
                out.extend_from_slice(b"{\"price\":");
                write_number(out, *price);
                out.extend_from_slice(b",\"amount\":");
                write_number(out, *amount);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"{}"),
        }
    }
}

/// A grouped level: price and summed amount as doubles, as tardis-node computes them.
impl SnapshotLevel for Option<(f64, f64)> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Some((price, amount)) => {
                out.extend_from_slice(b"{\"price\":");
                write_f64(out, *price);
                out.extend_from_slice(b",\"amount\":");
                write_f64(out, *amount);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"{}"),
        }
    }
}

/// A `book_snapshot` message (also `quote`, a depth-1 snapshot): `name` is the data type the
/// client asked for, verbatim; `bids` and `asks` run best first with exactly `depth` entries,
/// `None` for a missing level (written `{}`); `grouping` (grouped series only) goes after
/// `interval`, as tardis-node writes it. `ts_ns` is the snapshot's `timestamp` (the change's
/// exchange time, or the end of its interval bucket), `recv_ts_ns` its `localTimestamp`.
#[allow(clippy::too_many_arguments)]
pub fn book_snapshot<L: SnapshotLevel>(
    out: &mut Vec<u8>,
    exchange: Exchange,
    symbol: &str,
    name: &str,
    interval_ms: u64,
    grouping: Option<f64>,
    bids: &[L],
    asks: &[L],
    ts_ns: i64,
    recv_ts_ns: i64,
) {
    head(out, "book_snapshot", exchange, symbol);
    out.extend_from_slice(b",\"name\":");
    write_str(out, name);
    out.extend_from_slice(b",\"depth\":");
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(bids.len()).as_bytes());
    out.extend_from_slice(b",\"interval\":");
    out.extend_from_slice(buf.format(interval_ms).as_bytes());
    if let Some(g) = grouping {
        out.extend_from_slice(b",\"grouping\":");
        write_f64(out, g);
    }
    out.extend_from_slice(b",\"bids\":[");
    snapshot_levels(out, bids);
    out.extend_from_slice(b"],\"asks\":[");
    snapshot_levels(out, asks);
    out.push(b']');
    times(out, ts_ns, recv_ts_ns);
    out.push(b'}');
}

fn snapshot_levels<L: SnapshotLevel>(out: &mut Vec<u8>, levels: &[L]) {
    for (i, level) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        level.write(out);
    }
}

/// A `trade_bar` message (tardis-node `src/computable/tradebar.ts`, fields in its order):
/// `name` as requested, `interval` in ms (time), trades (tick) or amount (volume); the
/// bar's prices as the venue gave them, volumes and VWAP as doubles; `openTimestamp` and
/// `closeTimestamp` the first and latest in-order trade's time, `timestamp` that of the latest
/// trade (or the end of a time bar's bucket), `localTimestamp` the arrival of the trade that
/// closed the bar.
pub fn trade_bar(
    out: &mut Vec<u8>,
    exchange: Exchange,
    symbol: &str,
    bars: &super::state::BarStream,
    recv_ts_ns: i64,
) {
    let b = &bars.bar;
    head(out, "trade_bar", exchange, symbol);
    out.extend_from_slice(b",\"name\":");
    write_str(out, &bars.name);
    out.extend_from_slice(b",\"interval\":");
    write_f64(out, bars.interval);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(bars.kind.as_str().as_bytes());
    out.push(b'"');
    field_number(out, "open", Some(b.open));
    field_number(out, "high", Some(b.high));
    field_number(out, "low", Some(b.low));
    field_number(out, "close", Some(b.close));
    for (name, v) in [
        ("volume", b.volume),
        ("buyVolume", b.buy_volume),
        ("sellVolume", b.sell_volume),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_f64(out, v);
    }
    out.extend_from_slice(b",\"trades\":");
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(b.trades).as_bytes());
    out.extend_from_slice(b",\"vwap\":");
    write_f64(out, b.vwap);
    for (name, (ts, millis_only)) in [("openTimestamp", b.open_ts), ("closeTimestamp", b.close_ts)]
    {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_timestamp(out, ts, millis_only);
    }
    out.extend_from_slice(b",\"localTimestamp\":");
    write_timestamp(out, recv_ts_ns, true);
    out.extend_from_slice(b",\"timestamp\":");
    write_timestamp(out, b.timestamp.0, b.timestamp.1);
    out.push(b'}');
}

/// A `disconnect` message: `symbols_json` is the option's `symbols` array exactly as the
/// client sent it (already JSON), omitted when the option had none.
pub fn disconnect(
    out: &mut Vec<u8>,
    exchange: Exchange,
    local_ts_ns: i64,
    symbols_json: Option<&str>,
) {
    out.extend_from_slice(b"{\"type\":\"disconnect\",\"exchange\":\"");
    out.extend_from_slice(exchange.id().as_bytes());
    out.extend_from_slice(b"\",\"localTimestamp\":");
    write_timestamp(out, local_ts_ns, true);
    if let Some(symbols) = symbols_json {
        out.extend_from_slice(b",\"symbols\":");
        out.extend_from_slice(symbols.as_bytes());
    }
    out.push(b'}');
}

/// An `error` message: `exchange` is the option's exchange as the client wrote it (it may be
/// one pinfeed does not serve), `details` the error text, `count` the number of errors for
/// that exchange on this connection so far (`subSequentErrorsCount`, at least 1).
pub fn error(out: &mut Vec<u8>, exchange: &str, local_ts_ns: i64, details: &str, count: u32) {
    out.extend_from_slice(b"{\"type\":\"error\",\"exchange\":");
    write_str(out, exchange);
    out.extend_from_slice(b",\"localTimestamp\":");
    write_timestamp(out, local_ts_ns, true);
    out.extend_from_slice(b",\"details\":");
    write_str(out, details);
    out.extend_from_slice(b",\"subSequentErrorsCount\":");
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(count).as_bytes());
    out.push(b'}');
}

/// pinfeed's `book_invalid` message (opt-in `withIntegrityMessages`): the book of `symbol`
/// lost sync at `local_ts_ns`; a `book_change` with `isSnapshot: true` follows once rebuilt.
pub fn book_invalid(out: &mut Vec<u8>, exchange: Exchange, symbol: &str, local_ts_ns: i64) {
    head(out, "book_invalid", exchange, symbol);
    out.extend_from_slice(b",\"localTimestamp\":");
    write_timestamp(out, local_ts_ns, true);
    out.push(b'}');
}

/// pinfeed's `imbalance` message (opt-in data type `imbalance_{N}`): the bid share of the top
/// `depth` levels of each side, in percent with two decimals (`imbalance_bp` is that share in
/// basis points, `4119` for 41.19 %).
pub fn imbalance(
    out: &mut Vec<u8>,
    exchange: Exchange,
    symbol: &str,
    depth: usize,
    imbalance_bp: i64,
    exch_ts_ns: i64,
    recv_ts_ns: i64,
) {
    head(out, "imbalance", exchange, symbol);
    out.extend_from_slice(b",\"depth\":");
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(depth).as_bytes());
    out.extend_from_slice(b",\"imbalance\":");
    write_number(out, Decimal::new(imbalance_bp, 2));
    times(out, exch_ts_ns, recv_ts_ns);
    out.push(b'}');
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;

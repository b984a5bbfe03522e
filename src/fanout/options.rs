//! The `options` query parameter of `/ws-stream-normalized` (PROTOCOL.md sections 1-4) and its
//! resolution against the instruments pinfeed serves.
//!
//! Parsing is the cold path of a connection's start; it allocates freely.
//!
//! Outcomes, in the terms of PROTOCOL.md:
//! - missing or invalid JSON, a missing `dataTypes`, a malformed computed type
//!   (`book_snapshot_x_1s`, `quote_xs`, `trade_bar_5x`, `imbalance_0`): [`OptionsError::Malformed`]
//!   with tardis-machine's error text, closed 1011;
//! - an empty array: [`OptionsError::Empty`], closed 1000 `WS stream-normalized finished`;
//! - an unknown exchange, symbol or data type, or one the exchange has no feed for: a
//!   [`ResolveError`] naming it; the valid rest of the request is served.

use serde_json::Value;

use crate::model::{Exchange, InstrumentId, Instruments};

/// Deepest book snapshot or imbalance pinfeed computes, levels per side.
pub const MAX_DEPTH_LEVELS: usize = 1000;

/// One parsed option object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptionEntry {
    /// `exchange` as the client wrote it (`undefined` when absent, as JavaScript prints it).
    pub exchange: String,
    /// `symbols` as sent; `None` when absent.
    pub symbols: Option<Vec<String>>,
    /// The `symbols` array re-serialized as JSON, for `disconnect` messages.
    pub symbols_json: Option<String>,
    /// Parsed `dataTypes`, in request order.
    pub data_types: Vec<DataType>,
    /// `withDisconnectMessages` (JavaScript truthiness).
    pub with_disconnect_messages: bool,
    /// `withErrorMessages`.
    pub with_error_messages: bool,
    /// pinfeed: `withSeq`.
    pub with_seq: bool,
    /// pinfeed: `withIntegrityMessages`.
    pub with_integrity_messages: bool,
    /// pinfeed: `timerSnapshots`.
    pub timer_snapshots: bool,
    /// pinfeed: `withLatency`.
    pub with_latency: bool,
    /// pinfeed: `withUpdateId`: `book_change` and `book_snapshot` carry `updateId`, the
    /// venue's update id (or sequence) of the book state they reflect.
    pub with_update_id: bool,
    /// Replay only: `from` as sent (a string verbatim, any other value as its JSON text);
    /// `None` when absent.
    pub from: Option<String>,
    /// Replay only: `to`, as `from`.
    pub to: Option<String>,
}

/// A book snapshot series: `book_snapshot_{depth}_{n}{ms|s|m}`, `quote`, `quote_{n}{unit}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotSpec {
    /// The data type string verbatim (the message's `name`).
    pub name: String,
    /// Levels per side, `1..=MAX_DEPTH_LEVELS`.
    pub depth: usize,
    /// Interval in ms; 0 = after every change of the top `depth` levels.
    pub interval_ms: u64,
    /// `_grouped{g}`: the price grouping `g` as an IEEE double's bits (tardis-machine's
    /// `Number(g)`), positive; `None` ungrouped.
    pub grouping_bits: Option<u64>,
}

impl SnapshotSpec {
    /// The price grouping, when grouped.
    pub fn grouping(&self) -> Option<f64> {
        self.grouping_bits.map(f64::from_bits)
    }
}

/// What closes a trade bar (tardis-node `src/computable/tradebar.ts`, `BarKind`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// `{n}ms`, `{n}s`, `{n}m`: exchange-time buckets of `interval` ms.
    Time,
    /// `{n}ticks`: every `interval` trades.
    Tick,
    /// `{n}vol`: once the summed trade amount reaches `interval`.
    Volume,
}

impl BarKind {
    /// The message's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            BarKind::Time => "time",
            BarKind::Tick => "tick",
            BarKind::Volume => "volume",
        }
    }
}

/// A trade bar series: `trade_bar_{n}{ticks|ms|s|m|vol}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BarSpec {
    /// The data type string verbatim (the message's `name`).
    pub name: String,
    /// What closes a bar.
    pub kind: BarKind,
    /// The message's `interval` as an IEEE double's bits (ms for time bars, trades for tick
    /// bars, amount for volume bars; tardis-machine's `multiplier * Number(n)`), positive.
    pub interval_bits: u64,
}

impl BarSpec {
    /// The interval (ms, trades or amount, by [`BarSpec::kind`]).
    pub fn interval(&self) -> f64 {
        f64::from_bits(self.interval_bits)
    }
}

/// One entry of `dataTypes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataType {
    /// `trade`.
    Trade,
    /// `book_change`.
    BookChange,
    /// `book_ticker`.
    BookTicker,
    /// `derivative_ticker`.
    DerivativeTicker,
    /// `liquidation`.
    Liquidation,
    /// `option_summary` (Deribit options).
    OptionSummary,
    /// A book snapshot series.
    BookSnapshot(SnapshotSpec),
    /// A trade bar series.
    TradeBar(BarSpec),
    /// pinfeed: `imbalance_{N}`.
    Imbalance(usize),
    /// Well formed, but pinfeed does not compute it (depth over
    /// [`MAX_DEPTH_LEVELS`]): `details` says why.
    Unsupported {
        /// The data type string.
        name: String,
        /// The error text sent to the client.
        details: String,
    },
    /// A name that is no data type.
    Unknown(String),
}

/// Why a request is refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// Close 1011 with this reason (JavaScript error text, not yet cut to 123 bytes).
    Malformed(String),
    /// `[]`: close 1000 `WS stream-normalized finished`.
    Empty,
}

/// Decodes a query component as Node's `querystring` does: `+` is a space, `%XX` a byte, a
/// malformed `%` sequence stays as written; invalid UTF-8 becomes U+FFFD.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `options` value of a query string (the part after `?`), decoded. Several `options`
/// parameters are joined with `,` (JavaScript's `String` of the array Node returns).
pub fn options_param(query: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if url_decode(k) == "options" {
            let v = url_decode(v);
            found = Some(match found {
                None => v,
                Some(prev) => prev + "," + &v,
            });
        }
    }
    found
}

/// Parses a whole request from its query string.
///
/// # Errors
/// [`OptionsError`] as the module docs list.
pub fn parse_query(query: &str) -> Result<Vec<OptionEntry>, OptionsError> {
    match options_param(query) {
        None => Err(OptionsError::Malformed(
            "SyntaxError: \"undefined\" is not valid JSON".into(),
        )),
        Some(text) => parse_options(&text),
    }
}

/// JavaScript truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// Parses the `options` JSON text: one object or an array of objects.
///
/// # Errors
/// [`OptionsError`] as the module docs list.
pub fn parse_options(text: &str) -> Result<Vec<OptionEntry>, OptionsError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| OptionsError::Malformed(format!("SyntaxError: {e}")))?;
    let items = match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(OptionsError::Empty);
            }
            items
        }
        other => vec![other],
    };
    items.iter().map(parse_entry).collect()
}

fn parse_entry(v: &Value) -> Result<OptionEntry, OptionsError> {
    let malformed = |s: &str| OptionsError::Malformed(s.to_string());
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => {
            return Err(malformed(
                "TypeError: Cannot read properties of null (reading 'dataTypes')",
            ));
        }
        _ => {
            return Err(malformed(
                "TypeError: Cannot read properties of undefined (reading 'includes')",
            ));
        }
    };
    let data_types = match obj.get("dataTypes") {
        None | Some(Value::Null) => {
            return Err(malformed(
                "TypeError: Cannot read properties of undefined (reading 'includes')",
            ));
        }
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for t in a {
                let Value::String(t) = t else {
                    return Err(malformed(
                        "TypeError: dataType.startsWith is not a function",
                    ));
                };
                out.push(parse_data_type(t).map_err(OptionsError::Malformed)?);
            }
            out
        }
        Some(_) => {
            return Err(malformed(
                "TypeError: options.dataTypes.map is not a function",
            ));
        }
    };
    let exchange = match obj.get("exchange") {
        None => "undefined".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let (symbols, symbols_json) = match obj.get("symbols") {
        None | Some(Value::Null) => (None, None),
        Some(v @ Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for s in a {
                let Value::String(s) = s else {
                    return Err(malformed("TypeError: symbol.toUpperCase is not a function"));
                };
                out.push(s.clone());
            }
            (Some(out), Some(v.to_string()))
        }
        Some(_) => {
            return Err(malformed("TypeError: symbols.map is not a function"));
        }
    };
    Ok(OptionEntry {
        exchange,
        symbols,
        symbols_json,
        data_types,
        with_disconnect_messages: truthy(obj.get("withDisconnectMessages")),
        with_error_messages: truthy(obj.get("withErrorMessages")),
        with_seq: truthy(obj.get("withSeq")),
        with_integrity_messages: truthy(obj.get("withIntegrityMessages")),
        with_update_id: truthy(obj.get("withUpdateId")),
        timer_snapshots: truthy(obj.get("timerSnapshots")),
        with_latency: truthy(obj.get("withLatency")),
        from: obj.get("from").and_then(date_text),
        to: obj.get("to").and_then(date_text),
    })
}

/// A replay date option as text: a string verbatim, `null` as absent, anything else as its
/// JSON text (which then fails to parse as a date, as JavaScript's `Date.parse` fails on it).
fn date_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A non-negative decimal `digits[.digits]` times `multiplier`, when the product is a whole
/// number that fits `u64`.
fn scaled_number(s: &str, multiplier: u64) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
        || s.ends_with('.')
        || frac.len() > 18
        || int.len() > 19
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let scaled = mantissa.checked_mul(u128::from(multiplier))?;
    let div = 10u128.pow(frac.len() as u32);
    if scaled % div != 0 {
        return None;
    }
    u64::try_from(scaled / div).ok()
}

/// A positive integer depth.
fn depth_number(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&d| d > 0)
}

const TIME_UNITS: [(&str, u64); 3] = [("ms", 1), ("s", 1000), ("m", 60_000)];

/// The interval of `{n}{ms|s|m}` in ms; units are tested in the order ms, s, m.
fn interval_ms(spec: &str, data_type: &str) -> Result<u64, String> {
    let Some((unit, mult)) = TIME_UNITS.iter().find(|(u, _)| spec.ends_with(u)) else {
        return Err(format!("Error: invalid data type: {data_type}"));
    };
    let n = &spec[..spec.len() - unit.len()];
    scaled_number(n, *mult)
        .ok_or_else(|| format!("Error: invalid interval: {n}, data type: {data_type}"))
}

/// Parses one data type by the grammar of PROTOCOL.md section 3 (plus pinfeed's
/// `imbalance_{N}`).
///
/// # Errors
/// The 1011 close reason for a malformed computed type.
pub fn parse_data_type(s: &str) -> Result<DataType, String> {
    Ok(match s {
        "trade" => DataType::Trade,
        "book_change" => DataType::BookChange,
        "book_ticker" => DataType::BookTicker,
        "derivative_ticker" => DataType::DerivativeTicker,
        "liquidation" => DataType::Liquidation,
        "option_summary" => DataType::OptionSummary,
        "quote" => DataType::BookSnapshot(SnapshotSpec {
            name: s.to_string(),
            depth: 1,
            interval_ms: 0,
            grouping_bits: None,
        }),
        _ if s.starts_with("trade_bar") => parse_trade_bar(s)?,
        _ if s.starts_with("book_snapshot") => parse_book_snapshot(s)?,
        _ if s.starts_with("quote") => {
            let Some(spec) = s.strip_prefix("quote_") else {
                return Err(format!("Error: invalid data type: {s}"));
            };
            DataType::BookSnapshot(SnapshotSpec {
                name: s.to_string(),
                depth: 1,
                interval_ms: interval_ms(spec, s)?,
                grouping_bits: None,
            })
        }
        _ if s.starts_with("imbalance_") => {
            let n = &s["imbalance_".len()..];
            match depth_number(n) {
                Some(d) if d <= MAX_DEPTH_LEVELS => DataType::Imbalance(d),
                Some(_) => DataType::Unsupported {
                    name: s.to_string(),
                    details: format!(
                        "{s}: depth over {MAX_DEPTH_LEVELS} levels is not supported by pinfeed"
                    ),
                },
                None => return Err(format!("Error: invalid depth: {n}, data type: {s}")),
            }
        }
        _ => DataType::Unknown(s.to_string()),
    })
}

fn parse_book_snapshot(s: &str) -> Result<DataType, String> {
    let invalid = || format!("Error: invalid data type: {s}");
    if s.strip_prefix("book_snapshot_").is_none() || !TIME_UNITS.iter().any(|(u, _)| s.ends_with(u))
    {
        return Err(invalid());
    }
    let parts: Vec<&str> = s.split('_').collect();
    if parts.len() != 4 && parts.len() != 5 {
        return Err(invalid());
    }
    let depth_str = parts[2];
    let depth = depth_number(depth_str)
        .ok_or_else(|| format!("Error: invalid depth: {depth_str}, data type: {s}"))?;
    let interval = interval_ms(parts[parts.len() - 1], s)?;
    // a positive decimal of at most 9 fraction digits (stricter than `Number(g)`)
    let grouping_bits = if parts.len() == 5 {
        let grouping = parts[3].strip_prefix("grouped").and_then(|g| {
            scaled_number(g, 1_000_000_000)
                .filter(|&v| v > 0)
                .and_then(|_| g.parse::<f64>().ok())
        });
        match grouping {
            None => {
                return Err(format!(
                    "Error: invalid grouping: {}, data type: {s}",
                    parts[3]
                ));
            }
            Some(g) => Some(g.to_bits()),
        }
    } else {
        None
    };
    if depth > MAX_DEPTH_LEVELS {
        return Ok(DataType::Unsupported {
            name: s.to_string(),
            details: format!(
                "{s}: depth over {MAX_DEPTH_LEVELS} levels is not supported by pinfeed"
            ),
        });
    }
    Ok(DataType::BookSnapshot(SnapshotSpec {
        name: s.to_string(),
        depth,
        interval_ms: interval,
        grouping_bits,
    }))
}

fn parse_trade_bar(s: &str) -> Result<DataType, String> {
    let Some(spec) = s.strip_prefix("trade_bar_") else {
        return Err(format!("Error: invalid data type: {s}"));
    };
    // tardis-machine `src/helpers.ts` `tradeBarSuffixToKindMap`, tested in this order
    const SUFFIXES: [(&str, u64, BarKind); 5] = [
        ("ticks", 1, BarKind::Tick),
        ("ms", 1, BarKind::Time),
        ("s", 1000, BarKind::Time),
        ("m", 60_000, BarKind::Time),
        ("vol", 1, BarKind::Volume),
    ];
    let Some((suffix, mult, kind)) = SUFFIXES.iter().find(|(u, _, _)| spec.ends_with(u)) else {
        return Err(format!("Error: invalid data type: {s}"));
    };
    let n = &spec[..spec.len() - suffix.len()];
    // volume bars may have fractional sizes (up to 9 decimals); the others are whole numbers
    // of trades or ms. Stricter than `Number(n)`, which takes "", "0x10" or "1e3" too.
    let interval = if *kind == BarKind::Volume {
        scaled_number(n, 1_000_000_000)
            .filter(|&v| v > 0)
            .and_then(|_| n.parse::<f64>().ok())
    } else {
        scaled_number(n, *mult)
            .filter(|&v| v > 0 && v < 1 << 53)
            .map(|v| v as f64)
    };
    let Some(interval) = interval else {
        return Err(format!("Error: invalid interval: {n}, data type: {s}"));
    };
    Ok(DataType::TradeBar(BarSpec {
        name: s.to_string(),
        kind: *kind,
        interval_bits: interval.to_bits(),
    }))
}

/// What one subscription delivers, for one instrument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubKind {
    /// `trade`.
    Trade,
    /// `book_change`.
    BookChange,
    /// `book_ticker`.
    BookTicker,
    /// `derivative_ticker`.
    DerivativeTicker,
    /// `liquidation`.
    Liquidation,
    /// A snapshot series; `timer` when `timerSnapshots` applies (interval > 0 only).
    Snapshot {
        /// The series.
        spec: SnapshotSpec,
        /// Emitted on a wall-clock timer instead of on changes.
        timer: bool,
    },
    /// `imbalance_{N}`.
    Imbalance(usize),
    /// A trade bar series.
    TradeBar(BarSpec),
    /// `option_summary` (Deribit options).
    OptionSummary,
    /// `book_invalid` messages (`withIntegrityMessages` and a book-derived type).
    Integrity,
}

impl SubKind {
    /// True for the types derived from the book (they get `book_invalid` messages).
    pub fn is_book(&self) -> bool {
        matches!(
            self,
            SubKind::BookChange | SubKind::Snapshot { .. } | SubKind::Imbalance(_)
        )
    }
}

/// Which counter an unknown or unsupported item goes to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnknownKind {
    /// An exchange pinfeed does not serve.
    Exchange,
    /// A symbol pinfeed does not serve on that exchange.
    Symbol,
    /// A data type that is unknown, not computed by pinfeed, or not fed by that exchange.
    DataType,
}

/// One refused part of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveError {
    /// The option's `exchange` as written.
    pub exchange: String,
    /// The error text of the `error` message.
    pub details: String,
    /// Its counter.
    pub kind: UnknownKind,
    /// True when the option asked `withErrorMessages`.
    pub send: bool,
}

/// A request resolved against the served instruments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    /// `(instrument, kind)`, deduplicated, in request order.
    pub subs: Vec<(InstrumentId, SubKind)>,
    /// Refused parts, in request order.
    pub errors: Vec<ResolveError>,
    /// For `disconnect` messages: each option on a served exchange with its `symbols` JSON.
    /// Empty unless some option sets `withDisconnectMessages` (tardis-machine applies that
    /// flag to every option of the connection).
    pub disconnects: Vec<(Exchange, Option<String>)>,
    /// Some option set `withSeq`.
    pub with_seq: bool,
    /// Some option set `withLatency`.
    pub with_latency: bool,
    /// Some option set `withUpdateId`.
    pub with_update_id: bool,
    /// Some subscription was left out because tardis-machine sends nothing for it (a Deribit
    /// option's `derivative_ticker`, a future's `option_summary`): a request of only those
    /// is served (with nothing) rather than refused.
    pub quiet: bool,
}

/// Feeds each exchange has (PROTOCOL.md section 6): `(derivative_ticker, liquidation)`.
fn derivative_feeds(e: Exchange) -> bool {
    !matches!(e, Exchange::Binance | Exchange::BybitSpot | Exchange::Okex)
}

fn too_deep(name: &str, max_depth: usize) -> String {
    format!("{name}: depth over {max_depth} levels is not served (server.slot_depth)")
}

/// Resolves parsed options against `instruments`: symbols matched case-insensitively (a
/// missing or empty `symbols` means every served symbol of the exchange), duplicates merged.
/// Snapshot series and imbalance streams deeper than `max_depth` (`[server] slot_depth`, the
/// levels the book thread's slots hold) are refused as data types pinfeed does not serve.
pub fn resolve(entries: &[OptionEntry], instruments: &Instruments, max_depth: usize) -> Resolved {
    let mut r = Resolved::default();
    let any_disconnect = entries.iter().any(|e| e.with_disconnect_messages);
    let integrity = entries.iter().any(|e| e.with_integrity_messages);
    r.with_seq = entries.iter().any(|e| e.with_seq);
    r.with_latency = entries.iter().any(|e| e.with_latency);
    r.with_update_id = entries.iter().any(|e| e.with_update_id);
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let mut err = |kind: UnknownKind, details: String| {
            r.errors.push(ResolveError {
                exchange: entry.exchange.clone(),
                details,
                kind,
                send: entry.with_error_messages,
            });
        };
        let Some(exchange) = Exchange::from_id(&entry.exchange) else {
            err(
                UnknownKind::Exchange,
                format!(
                    "unknown exchange: {} (pinfeed serves: {})",
                    entry.exchange,
                    Exchange::ALL.map(|e| e.id()).join(", ")
                ),
            );
            continue;
        };
        if any_disconnect {
            r.disconnects.push((exchange, entry.symbols_json.clone()));
        }
        let mut ids = Vec::new();
        match &entry.symbols {
            Some(symbols) if !symbols.is_empty() => {
                for s in symbols {
                    match instruments.get(exchange, &s.to_ascii_uppercase()) {
                        Some(id) => ids.push(id),
                        None => err(
                            UnknownKind::Symbol,
                            format!("unknown symbol: {s} (not served on {})", exchange.id()),
                        ),
                    }
                }
            }
            _ => {
                ids.extend(
                    instruments
                        .iter()
                        .filter(|(_, e, _)| *e == exchange)
                        .map(|(id, _, _)| id),
                );
                if ids.is_empty() {
                    err(
                        UnknownKind::Symbol,
                        format!("no symbols are served on {}", exchange.id()),
                    );
                }
            }
        }
        let mut kinds = Vec::new();
        for t in &entry.data_types {
            let kind = match t {
                DataType::Trade => SubKind::Trade,
                DataType::BookChange => SubKind::BookChange,
                DataType::BookTicker => SubKind::BookTicker,
                DataType::DerivativeTicker if derivative_feeds(exchange) => {
                    SubKind::DerivativeTicker
                }
                DataType::DerivativeTicker => {
                    err(
                        UnknownKind::DataType,
                        format!(
                            "normalizeDerivativeTickers: {} not supported",
                            exchange.id()
                        ),
                    );
                    continue;
                }
                DataType::Liquidation if derivative_feeds(exchange) => SubKind::Liquidation,
                DataType::Liquidation => {
                    err(
                        UnknownKind::DataType,
                        format!("normalizeLiquidations: {} not supported", exchange.id()),
                    );
                    continue;
                }
                // tardis-node maps option tickers of Deribit (and OKX options, which pinfeed
                // does not serve); a Deribit future or perpetual simply gets none
                DataType::OptionSummary if exchange == Exchange::Deribit => SubKind::OptionSummary,
                DataType::OptionSummary => {
                    err(
                        UnknownKind::DataType,
                        format!("normalizeOptionsSummary: {} not supported", exchange.id()),
                    );
                    continue;
                }
                DataType::BookSnapshot(spec) if spec.depth > max_depth => {
                    err(UnknownKind::DataType, too_deep(&spec.name, max_depth));
                    continue;
                }
                DataType::Imbalance(n) if *n > max_depth => {
                    err(
                        UnknownKind::DataType,
                        too_deep(&format!("imbalance_{n}"), max_depth),
                    );
                    continue;
                }
                DataType::BookSnapshot(spec) => SubKind::Snapshot {
                    spec: spec.clone(),
                    timer: entry.timer_snapshots && spec.interval_ms > 0,
                },
                DataType::Imbalance(n) => SubKind::Imbalance(*n),
                DataType::TradeBar(spec) => SubKind::TradeBar(spec.clone()),
                DataType::Unsupported { details, .. } => {
                    err(UnknownKind::DataType, details.clone());
                    continue;
                }
                DataType::Unknown(name) => {
                    err(UnknownKind::DataType, format!("unknown data type: {name}"));
                    continue;
                }
            };
            kinds.push(kind);
        }
        let wants_integrity = integrity && kinds.iter().any(SubKind::is_book);
        for &id in &ids {
            let option = exchange == Exchange::Deribit
                && crate::venue::deribit::is_option(instruments.name(id).1);
            for kind in kinds
                .iter()
                .cloned()
                .chain(wants_integrity.then_some(SubKind::Integrity))
            {
                // tardis-node: a Deribit option's ticker is an option_summary, never a
                // derivative_ticker; other instruments have no option_summary
                match kind {
                    SubKind::DerivativeTicker if option => {
                        r.quiet = true;
                        continue;
                    }
                    SubKind::OptionSummary if !option => {
                        r.quiet = true;
                        continue;
                    }
                    _ => {}
                }
                if seen.insert((id, kind.clone())) {
                    r.subs.push((id, kind));
                }
            }
        }
    }
    r
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;

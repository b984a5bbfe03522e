//! What a fan-out shard keeps per instrument: the subscriber lists of every message type and
//! the snapshot series and imbalance streams, computed from the book thread's latest-state
//! slot ([`SlotView`]). No book: the book thread is its only writer.
//!
//! Snapshot semantics follow tardis-node's `BookSnapshotComputable` as PROTOCOL.md section 2
//! records it: each series keeps its own top `depth` levels; interval 0 emits after every change
//! of them; interval > 0 emits the first snapshot right after the first change, then, when a
//! change arrives in a later bucket (`floor(ts / interval)`) than the previous change and the
//! top changed since the last snapshot, the top as it stood before that change, stamped with
//! the end of the previous change's bucket.

use super::options::{BarKind, BarSpec};
use crate::model::{BookSide, BookTicker, Decimal, Exchange, Side};
use crate::pipeline::slot::SlotView;

/// A subscriber: a client slot and the index of the subscription in that client's list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SubRef {
    /// Client slot.
    pub client: u32,
    /// Index into the client's subscriptions.
    pub sub: u32,
}

/// Top `depth` levels of each side, best first; `None` is a missing level.
#[derive(Clone, Debug)]
pub struct Top {
    /// Bids, best (highest) first.
    pub bids: Vec<Option<(Decimal, Decimal)>>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Option<(Decimal, Decimal)>>,
    /// The venue's update id of the book state these levels were taken from (0: none yet).
    pub update_id: u64,
}

fn same(a: &Option<(Decimal, Decimal)>, b: &Option<(Decimal, Decimal)>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some((pa, qa)), Some((pb, qb))) => {
            (pa == pb || pa.cmp_value(*pb).is_eq()) && (qa == qb || qa.cmp_value(*qb).is_eq())
        }
        _ => false,
    }
}

impl Top {
    /// `depth` empty levels per side.
    pub fn new(depth: usize) -> Top {
        Top {
            bids: vec![None; depth],
            asks: vec![None; depth],
            update_id: 0,
        }
    }

    /// Empties every level.
    pub fn clear(&mut self) {
        self.bids.fill(None);
        self.asks.fill(None);
        self.update_id = 0;
    }

    /// Copies the slot's top levels; true when any level changed (price or amount).
    pub fn refresh(&mut self, book: &SlotView) -> bool {
        let mut changed = false;
        self.update_id = book.header.update_id;
        for (side, slots) in [
            (BookSide::Bid, &mut self.bids),
            (BookSide::Ask, &mut self.asks),
        ] {
            let mut levels = book.decimal_levels(side);
            for slot in slots.iter_mut() {
                let level = levels.next();
                if !same(slot, &level) {
                    *slot = level;
                    changed = true;
                }
            }
        }
        changed
    }
}

/// `_grouped{g}` levels, tardis-node's `BookSnapshotComputable` grouping
/// (`src/computable/booksnapshot.ts`, `_updateSideGrouped`), in its double arithmetic so the
/// levels equal tardis' bit for bit: bid prices floored and ask prices ceiled to multiples of
/// `g` (scaled by `10^decimalPlaces(g)`), amounts summed in book order. As there, a grouped
/// level past the last one computed keeps its old value. The raw levels are the slot's (the
/// best `[server] slot_depth` per side), not the whole book.
#[derive(Clone, Debug)]
pub struct Grouped {
    /// `g`.
    pub grouping: f64,
    /// `10^decimalPlaces(g)`.
    pow: f64,
    /// Grouped bids, best first.
    pub bids: Vec<Option<(f64, f64)>>,
    /// Grouped asks, best first.
    pub asks: Vec<Option<(f64, f64)>>,
}

/// tardis-node `handy.ts` `decimalPlaces`: the first power of ten that makes `n` whole (to
/// 1e-10).
fn decimal_places(n: f64) -> i32 {
    let has_fraction = |x: f64| ((x + 0.5).floor() - x).abs() > 1e-10;
    let mut count = 0;
    while has_fraction(n * 10f64.powi(count)) && 10f64.powi(count).is_finite() {
        count += 1;
    }
    count
}

impl Grouped {
    /// Empty levels, `depth` per side.
    pub fn new(grouping: f64, depth: usize) -> Grouped {
        Grouped {
            grouping,
            pow: 10f64.powi(decimal_places(grouping)),
            bids: vec![None; depth],
            asks: vec![None; depth],
        }
    }

    fn group(&self, price: f64, side: BookSide) -> f64 {
        let price_pow = price * self.pow;
        let group_pow = self.grouping * self.pow;
        let remainder = (price_pow % group_pow) / self.pow;
        let up = if side == BookSide::Ask && remainder > 0.0 {
            group_pow
        } else {
            0.0
        };
        (price_pow - remainder * self.pow + up) / self.pow
    }

    /// Regroups from the slot; true when a grouped level changed.
    pub fn refresh(&mut self, book: &SlotView) -> bool {
        let mut changed = false;
        for side in [BookSide::Bid, BookSide::Ask] {
            let mut current: Option<f64> = None;
            let mut amount = 0.0;
            let mut k = 0;
            let depth = self.bids.len();
            let mut put = |levels: &mut Vec<Option<(f64, f64)>>, k: usize, level: (f64, f64)| {
                if levels[k] != Some(level) {
                    levels[k] = Some(level);
                    changed = true;
                }
            };
            let mut out = std::mem::take(match side {
                BookSide::Bid => &mut self.bids,
                BookSide::Ask => &mut self.asks,
            });
            for (p, q) in book.decimal_levels(side) {
                let g = self.group(decimal_f64(p), side);
                let c = *current.get_or_insert(g);
                if c != g {
                    put(&mut out, k, (c, amount));
                    k += 1;
                    if k == depth {
                        break;
                    }
                    current = Some(g);
                    amount = 0.0;
                }
                amount += decimal_f64(q);
            }
            if let Some(c) = current.filter(|_| k < depth && amount > 0.0) {
                put(&mut out, k, (c, amount));
            }
            match side {
                BookSide::Bid => self.bids = out,
                BookSide::Ask => self.asks = out,
            }
        }
        changed
    }
}

/// One snapshot series of one instrument, shared by every client that asked for its name.
#[derive(Clone, Debug)]
pub struct SnapStream {
    /// The data type as requested (the message's `name`).
    pub name: Box<str>,
    /// Interval, ms; 0 = on every change of the top.
    pub interval_ms: u64,
    /// `timerSnapshots`: emitted at each wall-clock interval boundary instead of on changes.
    pub timer: bool,
    /// Subscribers.
    pub subs: Vec<SubRef>,
    /// The top as of the last change (what a snapshot shows; ungrouped series).
    pub top: Top,
    /// Grouped series: the grouped top as of the last change (what a snapshot shows).
    pub grouped: Option<Grouped>,
    changed: bool,
    initialized: bool,
    /// tardis' `_lastUpdateTimestamp`: exchange time of the last change, unix ns (or the end
    /// of its bucket once a bucket snapshot was emitted).
    last_update_ts_ns: i64,
    /// Timer series: next boundary, unix ns.
    pub next_due_ns: i64,
}

impl SnapStream {
    /// A new series with no state.
    pub fn new(name: &str, depth: usize, interval_ms: u64, timer: bool, now_ns: i64) -> Self {
        let mut s = SnapStream {
            name: name.into(),
            interval_ms,
            timer,
            subs: Vec::new(),
            top: Top::new(depth),
            grouped: None,
            changed: false,
            initialized: false,
            last_update_ts_ns: 0,
            next_due_ns: 0,
        };
        s.schedule(now_ns);
        s
    }

    /// The series grouped by `grouping` (`_grouped{g}`).
    pub fn grouped_by(mut self, grouping: Option<f64>) -> Self {
        self.grouped = grouping.map(|g| Grouped::new(g, self.top.bids.len()));
        self
    }

    /// Levels per side it shows.
    pub fn depth(&self) -> usize {
        self.top.bids.len()
    }

    /// Levels per side it reads from the slot: its depth, or for a grouped series every level
    /// the slot holds (`usize::MAX`).
    pub fn read_depth(&self) -> usize {
        if self.grouped.is_some() {
            usize::MAX
        } else {
            self.depth()
        }
    }

    /// Takes the slot's state into what a snapshot shows; true when that changed.
    pub fn refresh(&mut self, book: &SlotView) -> bool {
        match &mut self.grouped {
            Some(g) => {
                self.top.update_id = book.header.update_id;
                g.refresh(book)
            }
            None => self.top.refresh(book),
        }
    }

    /// Appends the `book_snapshot` message of what the series shows.
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        exchange: Exchange,
        symbol: &str,
        ts_ns: i64,
        recv_ts_ns: i64,
    ) {
        let (name, interval) = (&*self.name, self.interval_ms);
        match &self.grouped {
            Some(g) => super::encode::book_snapshot(
                out,
                exchange,
                symbol,
                name,
                interval,
                Some(g.grouping),
                &g.bids,
                &g.asks,
                ts_ns,
                recv_ts_ns,
            ),
            None => super::encode::book_snapshot(
                out,
                exchange,
                symbol,
                name,
                interval,
                None,
                &self.top.bids,
                &self.top.asks,
                ts_ns,
                recv_ts_ns,
            ),
        }
    }

    fn interval_ns(&self) -> i64 {
        (self.interval_ms as i64).saturating_mul(1_000_000)
    }

    /// Forgets all state (disconnect, lost sync): the next change starts a new series.
    pub fn reset(&mut self) {
        self.top.clear();
        if let Some(g) = &mut self.grouped {
            g.bids.fill(None);
            g.asks.fill(None);
        }
        self.changed = false;
        self.initialized = false;
        self.last_update_ts_ns = 0;
    }

    fn has_new(&mut self, ts_ns: i64) -> bool {
        if !self.changed {
            return false;
        }
        if self.interval_ms == 0 || !self.initialized {
            return true;
        }
        let interval = self.interval_ns();
        let current = ts_ns.div_euclid(interval);
        let last = self.last_update_ts_ns.div_euclid(interval);
        if current > last {
            self.last_update_ts_ns = (last + 1).saturating_mul(interval);
            return true;
        }
        false
    }

    /// Before a change with exchange time `ts_ns` is taken into the top: the `timestamp` of a
    /// snapshot to emit now from [`SnapStream::top`] (the top before the change).
    pub fn before_change(&mut self, ts_ns: i64) -> Option<i64> {
        if self.timer || !self.has_new(ts_ns) {
            return None;
        }
        self.changed = false;
        Some(self.last_update_ts_ns)
    }

    /// Takes the change into the top: the `timestamp` of a snapshot to emit now.
    pub fn after_change(&mut self, book: &SlotView, ts_ns: i64) -> Option<i64> {
        if self.timer {
            return None;
        }
        if self.refresh(book) {
            self.changed = true;
        }
        self.last_update_ts_ns = ts_ns;
        if !self.has_new(ts_ns) {
            return None;
        }
        self.changed = false;
        self.initialized = true;
        Some(self.last_update_ts_ns)
    }

    /// For a client joining the series (or recovering from conflation) while the book is
    /// synced: brings the top up to date and returns the `timestamp` to show it with.
    pub fn current(&mut self, book: &SlotView, last_change_ts_ns: i64) -> i64 {
        if self.timer {
            self.refresh(book);
            return last_change_ts_ns;
        }
        if !self.initialized {
            self.refresh(book);
            self.changed = false;
            self.initialized = true;
            self.last_update_ts_ns = last_change_ts_ns;
        }
        self.last_update_ts_ns
    }

    /// Timer series: the boundary to emit at, if `now_ns` reached it (then schedules the next).
    pub fn timer_due(&mut self, now_ns: i64) -> Option<i64> {
        if !self.timer || now_ns < self.next_due_ns {
            return None;
        }
        let due = self.next_due_ns;
        self.schedule(now_ns);
        // a late turn emits once, stamped with the latest boundary passed
        let interval = self.interval_ns();
        Some(due.max(now_ns.div_euclid(interval).saturating_mul(interval)))
    }

    fn schedule(&mut self, now_ns: i64) {
        if self.timer && self.interval_ms > 0 {
            let interval = self.interval_ns();
            self.next_due_ns = (now_ns.div_euclid(interval) + 1).saturating_mul(interval);
        } else {
            self.next_due_ns = i64::MAX;
        }
    }
}

/// One `imbalance_{N}` stream of one instrument.
#[derive(Clone, Debug)]
pub struct ImbStream {
    /// Levels per side.
    pub depth: usize,
    /// Subscribers.
    pub subs: Vec<SubRef>,
    top: Top,
}

impl ImbStream {
    /// A new stream.
    pub fn new(depth: usize) -> Self {
        ImbStream {
            depth,
            subs: Vec::new(),
            top: Top::new(depth),
        }
    }

    /// Forgets the last top.
    pub fn reset(&mut self) {
        self.top.clear();
    }

    /// After a change: the imbalance in basis points when the top `depth` levels changed.
    pub fn after_change(&mut self, book: &SlotView) -> Option<i64> {
        if self.top.refresh(book) {
            imbalance_bp(book, self.depth)
        } else {
            None
        }
    }

    /// For a joining client: the current imbalance.
    pub fn current(&mut self, book: &SlotView) -> Option<i64> {
        self.top.refresh(book);
        imbalance_bp(book, self.depth)
    }
}

/// Bid share of the top `n` levels of each side in basis points, rounded half up:
/// `10000 * Σ bid size / (Σ bid size + Σ ask size)`; `None` when both sides are empty. Exact
/// integer arithmetic on the book's fixed-point sizes (one scale per book).
pub fn imbalance_bp(book: &SlotView, n: usize) -> Option<i64> {
    let bid: i128 = book
        .levels(BookSide::Bid)
        .iter()
        .take(n)
        .map(|l| i128::from(l.qty))
        .sum();
    let ask: i128 = book
        .levels(BookSide::Ask)
        .iter()
        .take(n)
        .map(|l| i128::from(l.qty))
        .sum();
    let total = bid + ask;
    if total <= 0 {
        return None;
    }
    Some(((bid * 20_000 + total) / (2 * total)) as i64)
}

/// A time as a JavaScript `Date` holds it (`valueOf()`, whole ms), from unix ns.
fn date_ms(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(1_000_000)
}

/// The IEEE double JavaScript's `Number(text)` gives for a decimal: `mantissa / 10^decimals`
/// as one correctly rounded division when the mantissa is exact in a double (below 2^53;
/// every power of ten up to 10^22 is), else the correctly rounded parse of `{mantissa}e-{d}`.
/// No allocation.
pub fn decimal_f64(d: Decimal) -> f64 {
    if d.mantissa.unsigned_abs() < 1 << 53 {
        return d.mantissa as f64 / crate::model::pow10(d.decimals) as f64;
    }
    let mut int = itoa::Buffer::new();
    let mut exp = itoa::Buffer::new();
    let (m, e) = (int.format(d.mantissa), exp.format(d.decimals));
    // "-9223372036854775808e-18": at most 24 bytes
    let mut text = [0u8; 32];
    let n = m.len() + 2 + e.len();
    text[..m.len()].copy_from_slice(m.as_bytes());
    text[m.len()..m.len() + 2].copy_from_slice(b"e-");
    text[m.len() + 2..n].copy_from_slice(e.as_bytes());
    std::str::from_utf8(&text[..n])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The bar being built, tardis-node's `_inProgressBar` (`src/computable/tradebar.ts`): prices
/// as the venue gave them, volumes and the VWAP as IEEE doubles summed in trade order exactly
/// as the JavaScript does, so bars (and the volume bars' thresholds) equal tardis' bit for bit.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Bar {
    /// First trade's price.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Price of the latest trade in time order.
    pub close: Decimal,
    /// Sum of amounts.
    pub volume: f64,
    /// Sum of `buy` (taker buy) amounts.
    pub buy_volume: f64,
    /// Sum of `sell` amounts.
    pub sell_volume: f64,
    /// Trades in the bar; 0 = not opened.
    pub trades: u64,
    /// Volume-weighted average price, updated per trade as tardis does.
    pub vwap: f64,
    /// First trade's time, unix ns, and whether it prints with ms only.
    pub open_ts: (i64, bool),
    /// Latest in-order trade's time.
    pub close_ts: (i64, bool),
    /// The bar's `timestamp`: the latest in-order trade's time, or for a closed time bar the
    /// end of its bucket (whole ms).
    pub timestamp: (i64, bool),
}

/// One trade bar series of one instrument, shared by every client that asked for its name.
#[derive(Clone, Debug)]
pub struct BarStream {
    /// The data type as requested (the message's `name`).
    pub name: Box<str>,
    /// What closes a bar.
    pub kind: BarKind,
    /// ms (time), trades (tick) or amount (volume).
    pub interval: f64,
    /// Subscribers.
    pub subs: Vec<SubRef>,
    /// The bar in progress.
    pub bar: Bar,
}

impl BarStream {
    /// A new series with no bar open.
    pub fn new(spec: &BarSpec) -> Self {
        BarStream {
            name: spec.name.as_str().into(),
            kind: spec.kind,
            interval: spec.interval(),
            subs: Vec::new(),
            bar: Bar::default(),
        }
    }

    /// Forgets the bar in progress (disconnect: tardis resets every computable of the
    /// exchange).
    pub fn reset(&mut self) {
        self.bar = Bar::default();
    }

    /// tardis' `_hasNewBar` for a trade at `ts` (unix ns): true when the open bar is done.
    /// A time bar is done when `ts` falls in a later bucket than its open (its `timestamp`
    /// becomes the end of the open's bucket); a tick or volume bar when it reached the
    /// interval. Time buckets are on whole ms, as JavaScript `Date`s hold them.
    pub fn is_done(&mut self, ts_ns: i64) -> bool {
        let b = &mut self.bar;
        if b.trades == 0 {
            return false;
        }
        match self.kind {
            BarKind::Time => {
                let bucket = |ms: i64| (ms as f64 / self.interval).floor();
                let open = bucket(date_ms(b.open_ts.0));
                if bucket(date_ms(ts_ns)) > open {
                    b.timestamp = (((open + 1.0) * self.interval) as i64 * 1_000_000, true);
                    return true;
                }
                false
            }
            BarKind::Volume => b.volume >= self.interval,
            BarKind::Tick => b.trades as f64 >= self.interval,
        }
    }

    /// tardis' `_update`: takes one trade into the bar. `ts` is its time (unix ns) and whether
    /// it prints with ms only; `buy`/`sell`: its side (neither: `unknown`).
    pub fn update(&mut self, price: Decimal, amount: Decimal, side: Side, ts: (i64, bool)) {
        let b = &mut self.bar;
        let (p, a) = (decimal_f64(price), decimal_f64(amount));
        // some venues publish older trades after newer ones: those do not move the close
        let in_order = b.trades == 0 || date_ms(ts.0) >= date_ms(b.timestamp.0);
        if b.trades == 0 {
            b.open = price;
            b.high = price;
            b.low = price;
            b.open_ts = ts;
        }
        if price.cmp_value(b.high).is_gt() {
            b.high = price;
        }
        if price.cmp_value(b.low).is_lt() {
            b.low = price;
        }
        if in_order {
            b.close = price;
            b.close_ts = ts;
            b.timestamp = ts;
        }
        match side {
            Side::Buy => b.buy_volume += a,
            Side::Sell => b.sell_volume += a,
            Side::Unknown => {}
        }
        b.trades += 1;
        b.vwap = (b.vwap * b.volume + p * a) / (b.volume + a);
        // after the VWAP, which weighs by the volume before this trade
        b.volume += a;
    }
}

/// Everything a fan-out shard keeps per instrument.
#[derive(Debug)]
pub struct InstrState {
    /// Exchange id.
    pub exchange: Exchange,
    /// Symbol, upper case.
    pub symbol: Box<str>,
    /// Index of the upstream connection carrying it (`u32::MAX`: not known, a disconnect of
    /// any connection of its exchange resets it).
    pub conn: u32,
    /// True from a synced state (a notice or a snapshot) until a `BookInvalid` or the
    /// connection drops: `book_invalid` is sent once per loss.
    pub synced: bool,
    /// Latest slot version taken into the snapshot series (notices up to it are skipped).
    pub seen_version: u64,
    /// Levels per side the series and imbalance streams read from the slot.
    pub depth: usize,
    /// A snapshot request for the `book_change` subscribers is with the book thread.
    pub snapshot_requested: bool,
    /// `trade` subscribers.
    pub trade: Vec<SubRef>,
    /// `book_change` subscribers.
    pub book_change: Vec<SubRef>,
    /// `book_ticker` subscribers.
    pub book_ticker: Vec<SubRef>,
    /// `derivative_ticker` subscribers.
    pub derivative_ticker: Vec<SubRef>,
    /// `liquidation` subscribers.
    pub liquidation: Vec<SubRef>,
    /// `book_invalid` subscribers.
    pub integrity: Vec<SubRef>,
    /// Snapshot series.
    pub snaps: Vec<SnapStream>,
    /// Imbalance streams.
    pub imbs: Vec<ImbStream>,
    /// Trade bar series.
    pub bars: Vec<BarStream>,
    /// `option_summary` subscribers.
    pub option_summary: Vec<SubRef>,
    /// The summary fields its symbol gives ([`super::encode::option_static`]), computed at
    /// the first subscription; `None` for a symbol that is no option.
    pub option_static: Option<Box<str>>,
    /// The first half of the option ticker being received.
    pub option_half: Option<crate::model::OptionHalf>,
    /// The last book ticker (sent to a client recovering from conflation).
    pub last_book_ticker: Option<BookTicker>,
}

impl InstrState {
    /// Empty state with a preallocated book.
    pub fn new(exchange: Exchange, symbol: &str) -> Self {
        InstrState {
            exchange,
            symbol: symbol.into(),
            conn: u32::MAX,
            synced: false,
            seen_version: 0,
            depth: 0,
            snapshot_requested: false,
            trade: Vec::new(),
            book_change: Vec::new(),
            book_ticker: Vec::new(),
            derivative_ticker: Vec::new(),
            liquidation: Vec::new(),
            integrity: Vec::new(),
            snaps: Vec::new(),
            imbs: Vec::new(),
            bars: Vec::new(),
            option_summary: Vec::new(),
            option_static: None,
            option_half: None,
            last_book_ticker: None,
        }
    }

    /// The largest depth the series and imbalance streams need.
    pub fn wanted_depth(&self) -> usize {
        let snaps = self.snaps.iter().map(SnapStream::read_depth);
        let imbs = self.imbs.iter().map(|s| s.depth);
        snaps.chain(imbs).max().unwrap_or(0)
    }

    /// Drops every computed state; true when the book was synced.
    pub fn invalidate(&mut self) -> bool {
        let was = self.synced;
        self.synced = false;
        self.snapshot_requested = false;
        for s in &mut self.snaps {
            s.reset();
        }
        for s in &mut self.imbs {
            s.reset();
        }
        self.last_book_ticker = None;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::model::InstrumentId;
    use crate::pipeline::slot::BookSlots;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s.as_bytes()).unwrap()
    }

    /// What a shard reads after the book thread published `b`.
    fn view(b: &Book) -> SlotView {
        let slots = BookSlots::new(1, 10, 1);
        slots.want_depth(InstrumentId(0), 0, 10);
        slots.publish(InstrumentId(0), true, 0, Default::default(), Some(b));
        let mut v = SlotView::with_depth(10);
        slots.read(InstrumentId(0), 10, &mut v);
        v
    }

    fn book(bids: &[(&str, &str)], asks: &[(&str, &str)]) -> Book {
        let mut b = Book::default();
        for (p, q) in bids {
            b.apply(BookSide::Bid, d(p), d(q)).unwrap();
        }
        for (p, q) in asks {
            b.apply(BookSide::Ask, d(p), d(q)).unwrap();
        }
        b
    }

    const S: i64 = 1_000_000_000;
    const MS: i64 = 1_000_000;

    #[test]
    fn interval_zero_emits_on_every_top_change() {
        let mut s = SnapStream::new("book_snapshot_2_0ms", 2, 0, false, 0);
        let mut b = book(&[("100", "1")], &[("101", "1")]);
        assert_eq!(s.before_change(10 * S), None);
        assert_eq!(s.after_change(&view(&b), 10 * S), Some(10 * S));
        assert_eq!(s.top.bids, [Some((d("100"), d("1"))), None]);
        // a change below the top 2 levels emits nothing
        b.apply(BookSide::Bid, d("99"), d("1")).unwrap();
        b.apply(BookSide::Bid, d("98"), d("1")).unwrap();
        assert_eq!(s.after_change(&view(&b), 11 * S), Some(11 * S)); // 99 entered the top 2
        b.apply(BookSide::Bid, d("97"), d("5")).unwrap();
        assert_eq!(s.before_change(12 * S), None);
        assert_eq!(s.after_change(&view(&b), 12 * S), None);
        // same value written differently is no change
        b.apply(BookSide::Ask, d("101.0"), d("1.00")).unwrap();
        assert_eq!(s.after_change(&view(&b), 13 * S), None);
    }

    #[test]
    fn interval_buckets_like_tardis() {
        // PROTOCOL.md section 2: first snapshot right after the first change; then the book
        // as it stood before the first change of a later bucket, stamped with the bucket end
        let mut s = SnapStream::new("book_snapshot_1_1000ms", 1, 1000, false, 0);
        let mut b = book(&[("119", "20")], &[("120", "10")]);
        assert_eq!(
            s.after_change(&view(&b), 10 * S + 100 * MS),
            Some(10 * S + 100 * MS)
        );
        // same bucket change: nothing yet
        b.apply(BookSide::Ask, d("120"), d("11")).unwrap();
        assert_eq!(s.before_change(10 * S + 500 * MS), None);
        assert_eq!(s.after_change(&view(&b), 10 * S + 500 * MS), None);
        // a change two buckets later: the pre-change top, stamped 11.000
        b.apply(BookSide::Ask, d("120"), d("12")).unwrap();
        assert_eq!(s.before_change(12 * S + 132 * MS), Some(11 * S));
        assert_eq!(s.top.asks, [Some((d("120"), d("11")))]);
        assert_eq!(s.after_change(&view(&b), 12 * S + 132 * MS), None);
        // next bucket, top changed since: emits 13.000 with amount 12
        b.apply(BookSide::Ask, d("120"), d("13")).unwrap();
        assert_eq!(s.before_change(13 * S + 132 * MS), Some(13 * S));
        assert_eq!(s.top.asks, [Some((d("120"), d("12")))]);
        s.after_change(&view(&b), 13 * S + 132 * MS);
        // a later bucket whose change does not touch the top: still the pending snapshot
        b.apply(BookSide::Bid, d("1"), d("1")).unwrap();
        assert_eq!(s.before_change(20 * S), Some(14 * S));
        assert_eq!(s.after_change(&view(&b), 20 * S), None);
        // nothing changed in the top since: no snapshot
        assert_eq!(s.before_change(30 * S), None);
        // reset: the next change is a first change again
        s.reset();
        assert_eq!(s.after_change(&view(&b), 31 * S), Some(31 * S));
    }

    #[test]
    fn joiners_and_timers() {
        let b = book(&[("10", "1"), ("9", "2")], &[("11", "3")]);
        let mut s = SnapStream::new("book_snapshot_3_0ms", 3, 0, false, 0);
        assert_eq!(s.current(&view(&b), 5 * S), 5 * S);
        assert_eq!(s.top.bids[1], Some((d("9"), d("2"))));
        assert_eq!(s.top.asks[1], None);
        let mut t = SnapStream::new("quote_1s", 1, 1000, true, 10 * S + 200 * MS);
        assert_eq!(t.next_due_ns, 11 * S);
        assert_eq!(t.after_change(&view(&b), 10 * S), None);
        assert_eq!(t.timer_due(10 * S + 999 * MS), None);
        assert_eq!(t.timer_due(11 * S + 3 * MS), Some(11 * S));
        assert_eq!(t.next_due_ns, 12 * S);
        // a late turn emits once at the latest boundary
        assert_eq!(t.timer_due(15 * S + 1), Some(15 * S));
        assert_eq!(t.next_due_ns, 16 * S);
    }

    #[test]
    fn grouped_levels_floor_bids_and_ceil_asks_like_tardis() {
        assert_eq!(decimal_places(0.5), 1);
        assert_eq!(decimal_places(10.0), 0);
        assert_eq!(decimal_places(0.001), 3);
        let b = book(
            &[("65114.2", "1"), ("65114.0", "2"), ("65113.9", "0.5")],
            &[("65114.3", "3"), ("65114.5", "1"), ("65115.1", "2")],
        );
        let mut g = Grouped::new(0.5, 3);
        assert!(g.refresh(&view(&b)));
        // 65114.2 and 65114.0 floor to 65114; 65113.9 to 65113.5
        assert_eq!(g.bids, [Some((65114.0, 3.0)), Some((65113.5, 0.5)), None]);
        // 65114.3 and 65114.5 ceil to 65114.5; 65115.1 to 65115.5
        assert_eq!(g.asks, [Some((65114.5, 4.0)), Some((65115.5, 2.0)), None]);
        assert!(!g.refresh(&view(&b)));
        // tardis keeps a grouped level past the last one computed
        let b = book(&[("65114.2", "1")], &[("65114.3", "3")]);
        assert!(g.refresh(&view(&b)));
        assert_eq!(g.bids, [Some((65114.0, 1.0)), Some((65113.5, 0.5)), None]);
    }

    #[test]
    fn imbalance_in_basis_points() {
        let b = book(&[("10", "1"), ("9", "2")], &[("11", "3"), ("12", "4")]);
        assert_eq!(imbalance_bp(&view(&b), 1), Some(2500));
        assert_eq!(imbalance_bp(&view(&b), 2), Some(3000));
        let b = book(&[("10", "2")], &[("11", "1")]);
        assert_eq!(imbalance_bp(&view(&b), 5), Some(6667));
        assert_eq!(imbalance_bp(&view(&Book::default()), 5), None);
        let mut s = ImbStream::new(1);
        assert_eq!(s.after_change(&view(&b)), Some(6667));
        assert_eq!(s.after_change(&view(&b)), None);
    }
}

//! Fuzz entry points: each takes arbitrary bytes, drives one input surface of the engine, and
//! panics only on a broken invariant (a finding). The `fuzz/` cargo-fuzz crate calls them
//! under libFuzzer; `tests/fuzz_corpus.rs` replays seeds (built at run time from the
//! recordings and fixtures) and every committed crash through them on the stable toolchain.
//!
//! Surfaces: venue frames and REST bodies into one book engine ([`venue_input`]), book
//! operation sequences ([`book_ops`]), the client WebSocket decoder ([`client_frames`]), the
//! HTTP request head ([`request_head`]), the `options` query ([`options_query`]) and the
//! recording reader ([`recording`]).

use std::sync::{Mutex, OnceLock};

use crate::book::Book;
use crate::fanout::{options, ws};
use crate::model::{BookSide, Decimal, Event, Instruments, Stamps};
use crate::replay::Replay;
use crate::sim::recording::{Recording, bundled_recordings};
use crate::venue::{Feed, ParseError, VenueParser};

struct VenueState {
    replay: Replay,
    parsers: Vec<VenueParser>,
}

fn venue_state() -> &'static Mutex<VenueState> {
    static STATE: OnceLock<Mutex<VenueState>> = OnceLock::new();
    STATE.get_or_init(|| {
        // the recordings' instruments, so frames resolve to real books; none: an empty set
        let recordings: Vec<Recording> = bundled_recordings()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Recording::open(p).ok())
            .collect();
        let replay = Replay::prepare(&recordings)
            .unwrap_or_else(|_| Replay::prepare(&[]).expect("an empty replay always prepares"));
        Mutex::new(VenueState {
            replay,
            parsers: Feed::ALL.iter().map(|f| VenueParser::new(*f)).collect(),
        })
    })
}

/// The first input byte of [`venue_input`] for a frame of `feed` (`| 0x80`: a REST body).
pub fn feed_selector(feed: Feed) -> u8 {
    Feed::ALL.iter().position(|f| *f == feed).unwrap_or(0) as u8
}

/// One venue input into the shared parsers and book engine (state carries over between
/// calls, so books are reached in every sync state). `data[0]`: the feed
/// ([`feed_selector`], low 4 bits modulo the feed count); the rest: a WebSocket frame, or
/// with bit 7 of `data[0]` set a REST response as `URL '\n' body`.
///
/// # Panics
/// On a broken invariant: a book message nested, left open, or a level outside one; a parse
/// error without a counter kind.
pub fn venue_input(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let mut guard = venue_state().lock().unwrap_or_else(|e| e.into_inner());
    let VenueState { replay, parsers } = &mut *guard;
    let n = parsers.len();
    let parser = &mut parsers[usize::from(sel & 0x0F) % n];
    let mut frame = body.to_vec();
    let mut open = false;
    let engine = &mut replay.engine;
    let mut sink = |e: Event| {
        match e {
            Event::BookBegin(_) => {
                assert!(!open, "nested book message");
                open = true;
            }
            Event::BookEnd(_) => {
                assert!(open, "BookEnd without BookBegin");
                open = false;
            }
            Event::Level(_) => assert!(open, "level outside a book message"),
            _ => {}
        }
        engine.on_event(&e);
    };
    let result = if sel & 0x80 != 0 {
        let split = frame
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(frame.len());
        let (url, rest) = frame.split_at_mut(split);
        let url = String::from_utf8_lossy(url).into_owned();
        let body = rest.get_mut(1..).unwrap_or_default();
        parser.parse_rest(
            &url,
            body,
            Stamps::default(),
            &replay.instruments,
            &mut sink,
        )
    } else {
        parser.parse_frame(
            &mut frame,
            Stamps::default(),
            &replay.instruments,
            &mut sink,
        )
    };
    assert!(!open, "book message left open");
    if let Err(e) = result {
        assert!(e.kind_index() < ParseError::KIND_NAMES.len());
    }
}

/// Book operations: each 5-byte group is (side bit + scale, price u16, qty u16) applied to one
/// [`Book`]; a zero qty deletes.
///
/// # Panics
/// When a side is not strictly sorted best first, holds a zero size, or a failed apply
/// changed the book.
pub fn book_ops(data: &[u8]) {
    let mut book = Book::with_capacity(64);
    for op in data.chunks_exact(5) {
        let side = if op[0] & 1 == 0 {
            BookSide::Bid
        } else {
            BookSide::Ask
        };
        let decimals = (op[0] >> 1) % 19;
        let price = Decimal::new(i64::from(u16::from_le_bytes([op[1], op[2]])), decimals);
        let qty = Decimal::new(i64::from(u16::from_le_bytes([op[3], op[4]])), op[0] >> 5);
        let before = book.depth(side);
        if book.apply(side, price, qty).is_err() {
            assert_eq!(book.depth(side), before, "a failed apply changed the book");
        }
        for s in [BookSide::Bid, BookSide::Ask] {
            let levels: Vec<_> = book.levels(s).collect();
            for w in levels.windows(2) {
                let sorted = match s {
                    BookSide::Bid => w[0].price > w[1].price,
                    BookSide::Ask => w[0].price < w[1].price,
                };
                assert!(sorted, "{s:?} side out of order");
            }
            assert!(levels.iter().all(|l| l.qty > 0), "a zero size in the book");
        }
    }
}

/// The client frame decoder, fed `data[1..]` in chunks of `data[0] + 1` bytes.
///
/// # Panics
/// Never by design: any panic is a finding.
pub fn client_frames(data: &[u8]) {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let mut d = ws::FrameDecoder::default();
    for part in bytes.chunks(usize::from(chunk) + 1) {
        if d.feed(part, |_| {}).is_err() {
            return;
        }
    }
}

/// The request-head parser and router, as the fan-out uses them.
///
/// # Panics
/// Never by design: any panic is a finding.
pub fn request_head(data: &[u8]) {
    let end = ws::head_end(data)
        .unwrap_or(data.len())
        .min(ws::MAX_HEAD_BYTES);
    if let ws::Handshake::Upgrade { target, .. } = ws::parse_head(&data[..end]) {
        let (_path, query) = ws::route(target);
        options_query(query.as_bytes());
    }
}

/// The `options` query (URL-encoded JSON), resolved against the recordings' instruments.
///
/// # Panics
/// Never by design: any panic is a finding.
pub fn options_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(entries) = options::parse_query(&text) {
        static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
        let instruments = INSTRUMENTS.get_or_init(|| {
            let guard = venue_state().lock().unwrap_or_else(|e| e.into_inner());
            guard.replay.instruments.clone()
        });
        let _ = options::resolve(&entries, instruments, options::MAX_DEPTH_LEVELS);
    }
}

/// The recording reader on a JSON-lines body.
///
/// # Panics
/// Never by design: any panic is a finding.
pub fn recording(data: &[u8]) {
    let _ = Recording::from_reader(std::path::Path::new("fuzz.jsonl"), data);
}

/// A fuzz target: arbitrary bytes in, a panic on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay and `scripts/fuzz.sh`.
pub const TARGETS: [(&str, Target); 6] = [
    ("venue_input", venue_input),
    ("book_ops", book_ops),
    ("client_frames", client_frames),
    ("request_head", request_head),
    ("options_query", options_query),
    ("recording", recording),
];

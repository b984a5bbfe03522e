//! Arbitrary mutations of real recorded frames, fed through the venue parsers and the book
//! engine together: nothing panics, every book message that starts also ends, and every
//! rejected frame has a parse error kind to be counted by.

use proptest::prelude::*;

use pinfeed::model::{Event, Stamps};
use pinfeed::replay::Replay;
use pinfeed::sim::recording::{Record, Recording};
use pinfeed::venue::{Feed, VenueParser, feed_from_url};

/// The replay (instruments, engine) and the frames to mutate.
type Corpus = (Replay, Vec<(Feed, Vec<u8>)>);

fn corpus() -> Corpus {
    let paths = pinfeed::sim::recording::bundled_recordings().unwrap();
    let recs: Vec<_> = paths.iter().map(|p| Recording::open(p).unwrap()).collect();
    let mut frames = Vec::new();
    for rec in &recs {
        for r in &rec.records {
            if let Record::Recv { conn, data, .. } = r {
                let feed = feed_from_url(rec.connect_addr(conn).unwrap(), &rec.exchange).unwrap();
                // keep the corpus small enough for debug-mode tests: frames under 4 KiB
                if data.len() < 4096 {
                    frames.push((feed, data.as_bytes().to_vec()));
                }
            }
        }
    }
    (Replay::prepare(&recs).unwrap(), frames)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop::sample::select(b"0123456789-.e\",:[]{}".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_frames_never_panic(picks in prop::collection::vec((any::<usize>(), prop::collection::vec(mutation(), 1..6)), 1..8)) {
        let mut guard = corpus_cached().lock().unwrap_or_else(|e| e.into_inner());
        let (replay, frames) = &mut *guard;
        let mut parsers: Vec<(Feed, VenueParser)> = Feed::ALL.iter().map(|f| (*f, VenueParser::new(*f))).collect();
        for (pick, mutations) in picks {
            let (feed, original) = &frames[pick % frames.len()];
            let mut frame = original.clone();
            for m in mutations {
                let n = frame.len().max(1);
                match m {
                    Mutation::Flip(i, b) => { if !frame.is_empty() { frame[i % n] ^= b | 1; } }
                    Mutation::Truncate(i) => frame.truncate(i % n),
                    Mutation::Insert(i, b) => frame.insert(i % (frame.len() + 1), b),
                    Mutation::Remove(i) => { if !frame.is_empty() { frame.remove(i % n); } }
                    Mutation::Swap(i, j) => { if !frame.is_empty() { frame.swap(i % n, j % n); } }
                }
            }
            let parser = &mut parsers.iter_mut().find(|p| p.0 == *feed).unwrap().1;
            let mut open = false;
            let engine = &mut replay.engine;
            let result = parser.parse_frame(&mut frame, Stamps::default(), &replay.instruments, &mut |e: Event| {
                match e {
                    Event::BookBegin(_) => { assert!(!open, "nested book message"); open = true; }
                    Event::BookEnd(_) => { assert!(open, "BookEnd without BookBegin"); open = false; }
                    Event::Level(_) => assert!(open, "level outside a book message"),
                    _ => {}
                }
                engine.on_event(&e);
            });
            prop_assert!(!open, "book message left open");
            if let Err(e) = result {
                prop_assert!(e.kind_index() < pinfeed::venue::ParseError::KIND_NAMES.len());
            }
        }
    }
}

/// The corpus and one engine, shared by every case: the engine's state carries over, so
/// later cases hit books in every sync state.
fn corpus_cached() -> &'static std::sync::Mutex<Corpus> {
    use std::sync::{Mutex, OnceLock};
    static CORPUS: OnceLock<Mutex<Corpus>> = OnceLock::new();
    CORPUS.get_or_init(|| Mutex::new(corpus()))
}

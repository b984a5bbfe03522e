//! `pinfeed run`'s pipeline end to end against tiny in-test venues on 127.0.0.1: a WebSocket
//! server that plays the recorded Bybit linear frames (`BYBIT.ws.2`), and for Binance a
//! WebSocket server plus an HTTP responder for `/fapi/v1/depth` snapshots.
//!
//! The fan-out ring is taken over by the test ([`RunOptions::external_fanout`]): every
//! message the book thread publishes is checked, and the books the fan-out would hold are
//! rebuilt from them and compared with a replay of the same frames.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pinfeed::book::{BookEngine, SyncState};
use pinfeed::config::Config;
use pinfeed::fanout::FanoutMsg;
use pinfeed::model::{BookSide, Decimal, Event, Exchange, InstrumentId, Instruments, Stamps};
use pinfeed::run::{RunHandle, RunOptions, start};
use pinfeed::sim::recording::{Record, Recording, data_dir};
use pinfeed::venue::{self, Channels, Feed, Subscription, VenueParser};
use tungstenite::Message;

fn load(name: &str) -> Recording {
    Recording::open(&data_dir().join("recordings").join(name)).expect("recording")
}

/// Frames received on `conn`, in order.
fn frames(rec: &Recording, conn: &str) -> Vec<String> {
    rec.records
        .iter()
        .filter_map(|r| match r {
            Record::Recv { conn: c, data, .. } if c == conn => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn text(d: Decimal) -> String {
    let mut v = Vec::new();
    d.write_trimmed(&mut v);
    String::from_utf8(v).unwrap()
}

/// A book as sorted `price -> size` text maps, bids then asks.
type Sides = (BTreeMap<String, String>, BTreeMap<String, String>);

fn engine_book(engine: &BookEngine, id: InstrumentId) -> Sides {
    let book = engine.book(id).expect("registered");
    let side = |s| {
        book.decimal_levels(s)
            .map(|(p, q)| (text(p), text(q)))
            .collect::<BTreeMap<_, _>>()
    };
    (side(BookSide::Bid), side(BookSide::Ask))
}

/// What a replay of `frames` (REST bodies first where given) computes: trades in order
/// (exchange, symbol, id, price, size, side) and final books.
struct Expected {
    trades: Vec<(String, String, String, String)>,
    books: HashMap<String, Sides>,
}

/// `rest` bodies `(before frame index, url, body)` are parsed before that frame.
fn replay(
    feed: Feed,
    subs: &[Subscription],
    rest: &[(usize, String, String)],
    frames: &[String],
) -> Expected {
    let mut instruments = Instruments::new();
    let mut engine = BookEngine::new();
    for s in subs {
        let id = instruments.intern(s.exchange, &s.symbol);
        engine.register(
            id,
            venue::sync_rule(s.exchange),
            venue::checksum_fn(s.exchange),
            venue::needs_rest_snapshot(s.exchange),
        );
    }
    let mut parser = VenueParser::new(feed);
    let mut trades = Vec::new();
    let mut sink = |ev: Event| {
        engine.on_event(&ev);
        if let Event::Trade(t) = ev {
            trades.push(trade_key(&instruments, &t));
        }
    };
    for (i, f) in frames.iter().enumerate() {
        for (_, url, body) in rest.iter().filter(|r| r.0 == i) {
            let mut b = body.clone().into_bytes();
            parser
                .parse_rest(url, &mut b, Stamps::default(), &instruments, &mut sink)
                .unwrap();
        }
        let mut b = f.clone().into_bytes();
        let _ = parser.parse_frame(&mut b, Stamps::default(), &instruments, &mut sink);
    }
    let mut books = HashMap::new();
    for s in subs.iter().filter(|s| s.channels.contains(Channels::BOOK)) {
        let id = instruments.get(s.exchange, &s.symbol).unwrap();
        assert_eq!(
            engine.state(id),
            Some(SyncState::Synced),
            "replay {}",
            s.symbol
        );
        books.insert(s.symbol.clone(), engine_book(&engine, id));
    }
    Expected { trades, books }
}

fn trade_key(
    instruments: &Instruments,
    t: &pinfeed::model::Trade,
) -> (String, String, String, String) {
    let (_, symbol) = instruments.name(t.instrument);
    (
        symbol.to_string(),
        t.id.map(|i| i.as_str().to_string()).unwrap_or_default(),
        format!("{}@{}", text(t.qty), text(t.price)),
        t.side.as_str().to_string(),
    )
}

/// The books the fan-out would hold, rebuilt from the published messages.
#[derive(Default)]
struct FanoutView {
    msgs: Vec<FanoutMsg>,
    books: HashMap<InstrumentId, Sides>,
    current: Option<InstrumentId>,
}

impl FanoutView {
    fn take(&mut self, handle: &mut RunHandle) -> usize {
        let consumer = handle.fanout.as_mut().unwrap();
        let mut n = 0;
        while let Ok(m) = consumer.pop() {
            self.apply(&m);
            self.msgs.push(m);
            n += 1;
        }
        n
    }

    fn apply(&mut self, m: &FanoutMsg) {
        match m {
            FanoutMsg::Event(Event::BookBegin(b)) => {
                self.current = Some(b.instrument);
                let book = self.books.entry(b.instrument).or_default();
                if b.is_snapshot {
                    *book = Sides::default();
                }
            }
            FanoutMsg::Event(Event::Level(l)) => {
                let book = self.books.get_mut(&self.current.unwrap()).unwrap();
                let side = match l.side {
                    BookSide::Bid => &mut book.0,
                    BookSide::Ask => &mut book.1,
                };
                if l.qty.is_zero() {
                    side.remove(&text(l.price));
                } else {
                    side.insert(text(l.price), text(l.qty));
                }
            }
            FanoutMsg::Event(Event::BookEnd(_)) => self.current = None,
            FanoutMsg::BookInvalid(id) => {
                self.books.remove(id);
            }
            _ => {}
        }
    }

    fn trades(&self, instruments: &Instruments) -> Vec<(String, String, String, String)> {
        self.msgs
            .iter()
            .filter_map(|m| match m {
                FanoutMsg::Event(Event::Trade(t)) => Some(trade_key(instruments, t)),
                _ => None,
            })
            .collect()
    }

    /// Pumps until `done` or the deadline.
    fn pump_until(
        &mut self,
        handle: &mut RunHandle,
        deadline: Instant,
        mut done: impl FnMut(&FanoutView, &RunHandle) -> bool,
    ) -> bool {
        loop {
            self.take(handle);
            if done(self, handle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A condition the venue waits for.
type Gate = Box<dyn Fn() -> bool + Send>;

/// A WebSocket venue on 127.0.0.1 that plays frames to each connection it accepts.
struct Venue {
    port: u16,
    accepted_at: Arc<Mutex<Vec<Instant>>>,
    killed_at: Arc<Mutex<Option<Instant>>>,
    subscribes: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Venue {
    /// Serves on `port` (0: any). Accepts one connection, sends `frames[..limit]`, then
    /// either holds the connection open reading (until stopped) or, with `kill`, drops the
    /// connection and the listener at once.
    fn serve(port: u16, frames: Arc<Vec<String>>, limit: usize, kill: bool) -> Venue {
        Venue::serve_gated(port, frames, limit, kill, None)
    }

    /// As [`Venue::serve`]; with `gate = (i, open)`, frame `i` and later wait until `open()`
    /// (at most 5 s).
    fn serve_gated(
        port: u16,
        frames: Arc<Vec<String>>,
        limit: usize,
        kill: bool,
        gate: Option<(usize, Gate)>,
    ) -> Venue {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind venue");
        let port = listener.local_addr().unwrap().port();
        let accepted_at = Arc::new(Mutex::new(Vec::new()));
        let subscribes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let killed_at = Arc::new(Mutex::new(None));
        let (a, s, st, k) = (
            accepted_at.clone(),
            subscribes.clone(),
            stop.clone(),
            killed_at.clone(),
        );
        let thread = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if st.load(Ordering::Relaxed) => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            };
            a.lock().unwrap().push(Instant::now());
            stream.set_nonblocking(false).unwrap();
            let mut ws = tungstenite::accept(stream).expect("ws handshake");
            // the client subscribes first
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            while let Ok(Message::Text(t)) = ws.read() {
                s.lock().unwrap().push(t.to_string());
            }
            for (i, f) in frames[..limit].iter().enumerate() {
                if let Some((at, open)) = &gate {
                    let until = Instant::now() + Duration::from_secs(5);
                    while i == *at && !open() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                if ws.send(Message::Text(f.as_str().into())).is_err() {
                    return;
                }
            }
            if kill {
                *k.lock().unwrap() = Some(Instant::now());
                drop(ws);
                drop(listener);
                return;
            }
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            while !st.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
        Venue {
            port,
            accepted_at,
            killed_at,
            subscribes,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

struct Bybit {
    subs: Vec<Subscription>,
    frames: Arc<Vec<String>>,
}

fn bybit() -> Bybit {
    let rec = load("BYBIT.jsonl.zst");
    let conn = "BYBIT.ws.2";
    let addr = rec.connect_addr(conn).unwrap().to_string();
    let subs = venue::subscriptions_from_wire(Feed::BybitLinear, &addr, &rec.sent_frames(conn));
    Bybit {
        subs,
        frames: Arc::new(frames(&rec, conn)),
    }
}

fn bybit_config(port: u16, subs: &[Subscription]) -> Config {
    let symbols: Vec<String> = subs.iter().map(|s| format!("\"{}\"", s.symbol)).collect();
    Config::parse(&format!(
        r#"
        [cpu]
        pin = false
        [[venue]]
        feed = "bybit-linear"
        ws_url = "ws://127.0.0.1:{port}/v5/public/linear"
        symbols = [{}]
        silence_timeout_ms = 5000
        "#,
        symbols.join(", ")
    ))
    .expect("config")
}

fn options() -> RunOptions {
    RunOptions {
        external_fanout: true,
        status_interval: None,
        ..RunOptions::default()
    }
}

fn book_ids(handle: &RunHandle, subs: &[Subscription]) -> Vec<(String, InstrumentId)> {
    subs.iter()
        .filter(|s| s.channels.contains(Channels::BOOK))
        .map(|s| {
            (
                s.symbol.clone(),
                handle.instrument(s.exchange, &s.symbol).unwrap(),
            )
        })
        .collect()
}

#[test]
fn bybit_recording_through_the_pipeline() {
    let b = bybit();
    let expected = replay(Feed::BybitLinear, &b.subs, &[], &b.frames);
    assert!(expected.trades.len() > 10, "{}", expected.trades.len());
    let venue = Venue::serve(0, b.frames.clone(), b.frames.len(), false);
    let config = bybit_config(venue.port, &b.subs);
    let mut handle = start(&config, options()).expect("start");
    let books = book_ids(&handle, &b.subs);
    let mut view = FanoutView::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    let instruments = handle.instruments.clone();
    let n = expected.trades.len();
    let done = view.pump_until(&mut handle, deadline, |v, h| {
        v.trades(&instruments).len() >= n
            && h.stats.book.books_synced.load(Ordering::Relaxed) == books.len() as u64
            && h.stats.connections[0].frames_total() == b.frames.len() as u64
    });
    assert!(done, "timed out: {}", handle.stats.status_line());
    // the pipeline subscribed what the config asked for
    let subscribed = venue.subscribes.lock().unwrap().clone();
    assert!(
        subscribed.iter().any(|f| f.contains("publicTrade.BTCUSDT")),
        "{subscribed:?}"
    );
    std::thread::sleep(Duration::from_millis(50));
    view.take(&mut handle);
    let stats = handle.stats.clone();
    let report = handle.stop();
    venue.finish();

    // every trade, once, in order
    assert_eq!(view.trades(&report.instruments), expected.trades);
    // books synced and equal to the replay, in the engine and in the fan-out's view
    for (symbol, id) in &books {
        assert_eq!(
            report.engine.state(*id),
            Some(SyncState::Synced),
            "{symbol}"
        );
        let want = &expected.books[symbol];
        assert_eq!(&engine_book(&report.engine, *id), want, "{symbol} engine");
        assert_eq!(view.books.get(id), Some(want), "{symbol} fan-out view");
    }
    // merged tickers flowed, no integrity messages on a clean run
    assert!(view.msgs.iter().any(|m| matches!(m, FanoutMsg::Ticker(_))));
    assert!(
        !view
            .msgs
            .iter()
            .any(|m| matches!(m, FanoutMsg::BookInvalid(_) | FanoutMsg::Disconnect { .. }))
    );
    // counters: no drops, no parse errors, no reconnects
    assert_eq!(stats.total_dropped(), 0, "{}", stats.status_line());
    let conn = &stats.connections[0];
    assert_eq!(conn.parse_errors_total(), 0);
    assert_eq!(conn.reconnects.load(Ordering::Relaxed), 0);
    assert!(
        stats
            .queues
            .iter()
            .all(|q| q.high_water() <= q.capacity() as u64)
    );
    assert!(stats.queues[0].pushed() > 0 && stats.queues[0].high_water() > 0);
}

#[test]
fn venue_killed_mid_stream_reconnects_and_rebuilds() {
    let b = bybit();
    let expected = replay(Feed::BybitLinear, &b.subs, &[], &b.frames);
    let half = b.frames.len() / 2;
    let first = Venue::serve(0, b.frames.clone(), half, true);
    let port = first.port;
    let config = bybit_config(port, &b.subs);
    let mut handle = start(&config, options()).expect("start");
    let books = book_ids(&handle, &b.subs);
    let mut view = FanoutView::default();
    let instruments = handle.instruments.clone();

    // first session: the venue dies after half the frames; the engine sees the drop
    let ok = view.pump_until(
        &mut handle,
        Instant::now() + Duration::from_secs(10),
        |v, _| {
            v.msgs
                .iter()
                .any(|m| matches!(m, FanoutMsg::Disconnect { .. }))
        },
    );
    assert!(ok, "first half: {}", handle.stats.status_line());
    assert_eq!(handle.stats.connections[0].frames_total(), half as u64);
    let killed_at = first.killed_at.lock().unwrap().expect("killed");
    first.finish();
    let disconnect = view
        .msgs
        .iter()
        .position(|m| matches!(m, FanoutMsg::Disconnect { .. }))
        .unwrap();
    let trades_first = view.trades(&instruments).len();
    assert!(trades_first > 0);
    // every book was published (synced) before the kill
    for (symbol, id) in &books {
        assert!(
            view.msgs[..disconnect].iter().any(|m| matches!(m,
                FanoutMsg::Event(Event::BookBegin(b)) if b.instrument == *id && b.is_snapshot)),
            "{symbol}: no snapshot before the kill"
        );
    }

    // the venue stays down past the first retry (1 s + jitter), then comes back
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(killed_at.elapsed()));
    let second = Venue::serve(port, b.frames.clone(), b.frames.len(), false);
    let ok = view.pump_until(
        &mut handle,
        Instant::now() + Duration::from_secs(12),
        |v, h| {
            h.stats.connections[0].reconnects.load(Ordering::Relaxed) == 1
                && h.stats.book.books_synced.load(Ordering::Relaxed) == books.len() as u64
                && v.trades(&instruments).len() == trades_first + expected.trades.len()
                && h.stats.connections[0].frames_total() == (half + b.frames.len()) as u64
        },
    );
    assert!(ok, "after restart: {}", handle.stats.status_line());
    let reconnected_at = second.accepted_at.lock().unwrap()[0];
    std::thread::sleep(Duration::from_millis(50));
    view.take(&mut handle);
    let stats = handle.stats.clone();
    let report = handle.stop();
    second.finish();

    // backoff honoured: the first retry (>= 1 s) was refused, the second came >= 2 s later
    let gap = reconnected_at.duration_since(killed_at);
    assert!(gap >= Duration::from_secs(3), "reconnected after {gap:?}");
    assert!(gap < Duration::from_secs(8), "reconnected after {gap:?}");
    let conn = &stats.connections[0];
    assert_eq!(conn.reconnects.load(Ordering::Relaxed), 1);
    assert!(conn.connect_failures.load(Ordering::Relaxed) >= 1);

    // disconnect, then book_invalid for every published book, then fresh snapshots
    let disconnect = view
        .msgs
        .iter()
        .position(|m| {
            matches!(
                m,
                FanoutMsg::Disconnect {
                    exchange: Exchange::Bybit,
                    ..
                }
            )
        })
        .expect("Disconnect published");
    if let FanoutMsg::Disconnect {
        last_recv_ts_ns, ..
    } = view.msgs[disconnect]
    {
        assert!(last_recv_ts_ns > 0);
    }
    for (symbol, id) in &books {
        let invalid = view
            .msgs
            .iter()
            .position(|m| *m == FanoutMsg::BookInvalid(*id))
            .unwrap_or_else(|| panic!("{symbol}: no BookInvalid"));
        assert!(
            invalid > disconnect,
            "{symbol}: BookInvalid before Disconnect"
        );
        let snapshot = view.msgs[invalid..].iter().position(|m| {
            matches!(m, FanoutMsg::Event(Event::BookBegin(b)) if b.instrument == *id && b.is_snapshot)
        });
        assert!(
            snapshot.is_some(),
            "{symbol}: no snapshot after BookInvalid"
        );
        // rebuilt from the new snapshot: equal to a replay of the whole second session
        assert_eq!(report.engine.state(*id), Some(SyncState::Synced));
        let want = &expected.books[symbol];
        assert_eq!(&engine_book(&report.engine, *id), want, "{symbol} engine");
        assert_eq!(view.books.get(id), Some(want), "{symbol} fan-out view");
        let s = report.engine.stats(*id).unwrap();
        assert_eq!(s.resyncs[6], 1, "{symbol}: one resync for the disconnect");
    }
    assert_eq!(stats.total_dropped(), 0, "{}", stats.status_line());
}

/// A one-route HTTP responder: answers `GET <path>?...` with `body`, counts requests.
fn http_responder(
    body: String,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let mut s: TcpStream = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 2048];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            hits.lock().unwrap().push(line);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, t)
}

#[test]
fn binance_book_from_a_rest_snapshot() {
    let rec = load("BINANCE_FUTURES.jsonl.zst");
    let conn = rec.ws_connections()[0].clone();
    let addr = rec.connect_addr(&conn).unwrap().to_string();
    let all = venue::subscriptions_from_wire(Feed::BinanceFutures, &addr, &rec.sent_frames(&conn));
    // one book, SUSHIUSDT, and its recorded REST snapshot
    let sub = all
        .iter()
        .find(|s| s.symbol == "SUSHIUSDT")
        .expect("SUSHIUSDT")
        .clone();
    let subs = vec![sub.clone()];
    let (snap_ts, snap_url, snap_body) = rec
        .records
        .iter()
        .find_map(|r| match r {
            Record::Http { ts, url, data, .. }
                if url.contains("/depth") && url.contains("symbol=SUSHIUSDT") =>
            {
                Some((*ts, url.clone(), data.clone()))
            }
            _ => None,
        })
        .expect("recorded SUSHIUSDT depth snapshot");
    let recv: Vec<(f64, String)> = rec
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Recv { conn: c, ts, data }
                if *c == conn && data.starts_with("{\"stream\":\"sushiusdt@") =>
            {
                Some((*ts, data.clone()))
            }
            _ => None,
        })
        .collect();
    // frames received before the snapshot arrived are sent before the REST request is answered
    let gate = recv.iter().filter(|(ts, _)| *ts < snap_ts).count();
    let frames: Vec<String> = recv.into_iter().map(|(_, f)| f).collect();
    assert!(gate > 0 && gate < frames.len());
    let expected = replay(
        Feed::BinanceFutures,
        &subs,
        &[(gate, snap_url, snap_body.clone())],
        &frames,
    );

    let hits = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (http_port, http) = http_responder(snap_body, hits.clone(), stop.clone());
    let gate_hits = hits.clone();
    let open: Gate = Box::new(move || !gate_hits.lock().unwrap().is_empty());
    let venue = Venue::serve_gated(
        0,
        Arc::new(frames.clone()),
        frames.len(),
        false,
        Some((gate, open)),
    );
    let config = Config::parse(&format!(
        r#"
        [cpu]
        pin = false
        [[venue]]
        feed = "binance-futures"
        ws_url = "ws://127.0.0.1:{}"
        rest_url = "http://127.0.0.1:{http_port}"
        symbols = ["SUSHIUSDT"]
        channels = ["trades", "book"]
        "#,
        venue.port
    ))
    .unwrap();
    let mut handle = start(&config, options()).expect("start");
    let id = handle
        .instrument(Exchange::BinanceFutures, "SUSHIUSDT")
        .unwrap();
    let mut view = FanoutView::default();
    let instruments = handle.instruments.clone();
    let n = expected.trades.len();
    let ok = view.pump_until(
        &mut handle,
        Instant::now() + Duration::from_secs(15),
        |v, h| {
            h.stats.connections[0].frames_total() == frames.len() as u64
                && h.stats.book.books_synced.load(Ordering::Relaxed) == 1
                && v.trades(&instruments).len() == n
                && v.books.get(&id) == expected.books.get("SUSHIUSDT")
        },
    );
    assert!(ok, "{}", handle.stats.status_line());
    let stats = handle.stats.clone();
    let report = handle.stop();
    venue.finish();
    stop.store(true, Ordering::Relaxed);
    http.join().unwrap();

    let hits = hits.lock().unwrap().clone();
    assert!(!hits.is_empty());
    assert!(
        hits[0].starts_with("GET /fapi/v1/depth?symbol=SUSHIUSDT&limit=1000"),
        "{hits:?}"
    );
    assert_eq!(view.trades(&report.instruments), expected.trades);
    assert_eq!(report.engine.state(id), Some(SyncState::Synced));
    assert_eq!(
        &engine_book(&report.engine, id),
        &expected.books["SUSHIUSDT"]
    );
    assert!(stats.rest.snapshots.load(Ordering::Relaxed) >= 1);
    assert_eq!(stats.total_dropped(), 0);
}

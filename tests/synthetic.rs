//! `pinfeed simulate --synthetic` over the wire: the engine, started in-process on the
//! simulator's own config, syncs every book with no gap, receives trades, and the simulator
//! sends at about the asked rate. Plain WebSocket and TLS.

use std::time::{Duration, Instant};

use pinfeed::config::Config;
use pinfeed::run::{RunHandle, RunOptions, start};
use pinfeed::sim::server::{SimOptions, Simulator};
use pinfeed::sim::synthetic::{Burst, SyntheticOptions, instruments};
use pinfeed::venue::Feed;

fn simulator(tls: bool, rate_per_s: f64, burst: Option<Burst>) -> Simulator {
    Simulator::start(SimOptions {
        recordings: Vec::new(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls,
        speed: 1.0,
        looped: false,
        ca_key: None,
        synthetic: Some(SyntheticOptions {
            rate_per_s,
            burst,
            seed: 5,
            ..SyntheticOptions::default()
        }),
        faults: Vec::new(),
    })
    .unwrap()
}

fn engine(config_text: &str) -> RunHandle {
    let text = config_text.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n");
    let config = Config::parse(&text).unwrap();
    start(
        &config,
        RunOptions {
            external_fanout: true,
            status_interval: None,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

/// Drains the fan-out ring for `d`.
fn pump(handle: &mut RunHandle, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        let fanout = handle.fanout.as_mut().unwrap();
        let mut n = 0;
        while fanout.pop().is_ok() {
            n += 1;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn total_books() -> u64 {
    Feed::ALL.iter().map(|f| instruments(*f).len() as u64).sum()
}

/// Waits (at most 60 s on this shared machine) until every book is synced and trades flow.
fn wait_synced(handle: &mut RunHandle) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        pump(handle, Duration::from_millis(100));
        let book = &handle.stats.book;
        let synced = book.books_synced.load(std::sync::atomic::Ordering::Relaxed);
        let trades = handle.stats.trades();
        if synced == total_books() && trades > 100 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{synced} of {} books synced, {trades} trades",
            total_books()
        );
    }
}

fn check_clean(handle: &RunHandle) {
    use std::sync::atomic::Ordering::Relaxed;
    let book = &handle.stats.book;
    assert_eq!(book.gaps.load(Relaxed), 0, "gaps");
    assert_eq!(book.checksum_failures.load(Relaxed), 0, "checksum failures");
    assert_eq!(book.resyncs.load(Relaxed), 0, "resyncs");
    for c in &handle.stats.connections {
        assert_eq!(c.parse_errors_total(), 0, "{:?} parse errors", c.feed);
        assert!(c.frames_total() > 0, "{:?} silent", c.feed);
    }
}

#[test]
fn engine_syncs_every_synthetic_book_at_the_asked_rate() {
    let rate = 8_000.0;
    let sim = simulator(false, rate, None);
    let mut handle = engine(&sim.config_toml(None));
    wait_synced(&mut handle);
    let before = sim.stats().frames_sent;
    let t0 = Instant::now();
    pump(&mut handle, Duration::from_millis(1500));
    let sent = sim.stats().frames_sent - before;
    let achieved = sent as f64 / t0.elapsed().as_secs_f64();
    // loose: the machine is shared, this is a debug build
    assert!(achieved > rate * 0.5, "{achieved:.0} frames/s of {rate}");
    assert!(achieved < rate * 1.5, "{achieved:.0} frames/s of {rate}");
    check_clean(&handle);
    let per_feed = sim.synthetic_stats().unwrap().frames_by_feed;
    assert_eq!(per_feed.len(), Feed::ALL.len());
    assert!(per_feed.iter().all(|(_, n)| *n > 0), "{per_feed:?}");
    let report = handle.stop();
    assert!(report.engine.registered().count() as u64 >= total_books());
}

#[test]
fn tls_and_bursts_keep_books_synced() {
    let burst: Burst = "3x:200ms/1s".parse().unwrap();
    let sim = simulator(true, 4_000.0, Some(burst));
    let schedule = sim.synthetic().unwrap().schedule().unwrap();
    assert_eq!(schedule.burst, burst);
    assert!(schedule.in_burst_wall_ns(schedule.start_wall_ns + 100_000_000));
    assert!(!schedule.in_burst_wall_ns(schedule.start_wall_ns + 500_000_000));
    let dir = std::env::temp_dir().join(format!("pinfeed-synthetic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.toml");
    let ca = sim.write_config(&path).unwrap().expect("CA file");
    assert!(ca.exists());
    let mut handle = engine(&std::fs::read_to_string(&path).unwrap());
    wait_synced(&mut handle);
    pump(&mut handle, Duration::from_millis(1000));
    check_clean(&handle);
    handle.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_synthetic_flags_are_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_pinfeed");
    for (args, flag) in [
        (&["--synthetic", "--burst", "10x:10s/1s"][..], "--burst"),
        (&["--synthetic", "--burst", "0.5x:1s/10s"][..], "--burst"),
        (&["--synthetic", "--burst", "10x:1h/10h"][..], "--burst"),
        (&["--synthetic", "--rate", "0"][..], "--rate"),
        (&["--synthetic", "--rate", "fast"][..], "--rate"),
        (
            &["--synthetic", "--recording", "x.jsonl"][..],
            "--recording",
        ),
        (&["--rate", "10"][..], "--rate"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("simulate")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

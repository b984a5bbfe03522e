//! `pinfeed bench`: the load clients against the real fan-out server (engine on the recorded
//! simulator), the binary's JSON report (synthetic input with bursts), and its refusals.

mod util;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pinfeed::bench::client::{LoadHandle, LoadOptions, MessageType};
use pinfeed::bench::{Scenario, client_targets};
use pinfeed::config::Config;
use pinfeed::run::{self, RunOptions};
use pinfeed::sim::server::{SimOptions, Simulator};

const TRADE: usize = MessageType::Trade as usize;

#[test]
fn load_clients_against_the_engine() {
    let sim_options = |listen| SimOptions {
        recordings: util::recordings(),
        listen,
        tls: false,
        speed: 0.0,
        looped: false,
        ca_key: None,
        synthetic: None,
        faults: Vec::new(),
    };
    // The simulator writes the engine's config, then goes away until the clients are
    // connected, so that every client sees the whole recording.
    let mut sim = Simulator::start(sim_options("127.0.0.1:0".parse().unwrap())).unwrap();
    let sim_addr = sim.addr();
    let mut cfg = Config::parse(&sim.config_toml(None)).unwrap();
    sim.stop();
    drop(sim);
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    let handle = run::start(
        &cfg,
        RunOptions {
            status_interval: None,
            ..RunOptions::default()
        },
    )
    .unwrap();
    let addr = handle.local_addr.unwrap();
    let targets = client_targets(&handle.instruments, Scenario::All, 3);
    let load = LoadHandle::start(LoadOptions {
        addr,
        targets,
        threads: 2,
        burst: None,
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while load.settled() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(load.connected(), 3);

    let sim = Simulator::start(sim_options(sim_addr)).unwrap();
    // wait for every connection to deliver, then for the fan-out to go quiet
    let fanout = handle.fanout_stats.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_flowing = || {
        handle
            .stats
            .connections
            .iter()
            .all(|c| c.frames_total() > 0)
    };
    while !all_flowing() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(all_flowing(), "{}", handle.stats.status_line());
    let mut last = u64::MAX;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let sent = fanout.load().messages_sent;
        if sent != last {
            last = sent;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(1500) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = load.stop();
    let counters = fanout.load();
    drop(sim);
    let report = handle.stop();
    assert_eq!(report.stats.total_dropped(), 0);

    assert_eq!(stats.clients.len(), 3);
    let first = &stats.clients[0];
    assert!(first.by_type[TRADE] > 100, "{first:?}");
    assert!(
        first.by_type[MessageType::BookChange as usize] > 0,
        "{first:?}"
    );
    for c in &stats.clients {
        assert!(c.connected && !c.failed, "{c:?}");
        assert_eq!(c.seq_gaps, 0, "{c:?}");
        assert_eq!(c.close_code, None, "{c:?}");
        // trades are never conflated: every client sees every one
        assert_eq!(c.by_type[TRADE], first.by_type[TRADE]);
        if counters.conflations == 0 {
            assert_eq!(c.by_type, first.by_type);
        }
    }
    // fan-out queued exactly what the clients read
    assert_eq!(counters.messages_sent, stats.messages());
    // withLatency stamps: one per message that carried an upstream receive stamp
    let lat = &stats.latency;
    assert!(!lat.ingest_to_client_ns.is_empty());
    assert_eq!(lat.ingest_to_fanout_ns.len(), lat.ingest_to_client_ns.len());
    assert_eq!(lat.fanout_to_client_ns.len(), stats.messages());
    assert_eq!(lat.negative, 0);
    // recorded trade ids are venue ids, not send stamps
    assert_eq!(lat.e2e_ns.len(), 0);
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinfeed"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_report_is_one_object_with_every_field() {
    let out = bench(&[
        "--json",
        "--duration",
        "2",
        "--clients",
        "2",
        "--warmup",
        "1",
        "--floor-duration",
        "0.3",
        "--rate",
        "5000",
        "--burst",
        "4x:200ms/1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v.is_object());
    let num = |p: &str| {
        v.pointer(p)
            .and_then(|x| x.as_f64())
            .unwrap_or_else(|| panic!("{p} missing in {v}"))
    };
    assert_eq!(num("/rate_target"), 5000.0);
    assert!(num("/rate_in") > 0.0);
    assert!(num("/events_out") > 0.0);
    assert_eq!(num("/clients"), 2.0);
    assert!((num("/duration_s") - 2.0).abs() < 0.5);
    for q in ["/e2e_us", "/internal_us"] {
        for f in ["p50", "p99", "p999", "max"] {
            assert!(num(&format!("{q}/{f}")) >= 0.0);
        }
    }
    assert!(num("/internal_us/p50") > 0.0);
    // synthetic trade ids are send stamps: end-to-end latency has samples
    assert!(num("/e2e_us/p50") > 0.0);
    assert!(num("/e2e_us/max") >= num("/e2e_us/p50"));
    assert!(num("/internal_us/max") >= num("/internal_us/p99"));
    let stages = v["stages_us"].as_object().unwrap();
    assert!(!stages.is_empty());
    for (_, s) in stages {
        assert!(s["p50"].is_number() && s["p99"].is_number());
    }
    assert!(num("/floor_us/ring_hop_p50") > 0.0);
    assert!(num("/floor_us/tcp_hop_p50") > 0.0);
    // a burst configured: trades split by send time into quiet and burst windows
    assert!(num("/trade_isolation/quiet_p99_us") > 0.0);
    assert!(num("/trade_isolation/burst_p99_us") > 0.0);
    let drops = v["drops"].as_object().unwrap();
    assert!(drops.contains_key("fanout"), "{drops:?}");
    assert!(drops.values().all(|d| d.is_u64()));
    assert!(num("/rss_peak_mib") > 1.0);
    assert_eq!(num("/per_client/seq_gaps"), 0.0);
    assert!(num("/per_client/min_messages") > 0.0);
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn clients_over_the_fd_limit_are_refused() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 128 && exec {} bench --clients 100 --duration 1",
            env!("CARGO_BIN_EXE_pinfeed")
        ))
        .output()
        .unwrap();
    let e = refused(&out);
    assert!(e.contains("--clients 100:"), "{e}");
    assert!(
        e.contains("file descriptors") && e.contains("limit is 128"),
        "{e}"
    );
}

#[test]
fn bad_flags_are_refused() {
    for (args, needle) in [
        (&["--burst", "10x:1s"][..], "--burst"),
        (&["--burst", "10x:1s/10m", "--synthetic"], "--burst"),
        (
            &["--burst", "10x:1s/10s", "--recording", "x.jsonl.zst"],
            "--burst",
        ),
        (&["--rate", "0"], "--rate"),
        (&["--rate=-5"], "--rate"),
        (&["--rate", "20000000"], "--rate"),
        (&["--clients", "0"], "--clients"),
        (&["--duration", "0"], "--duration"),
    ] {
        let e = refused(&bench(args));
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn engine_counters_are_visible() {
    // the fan-out counters the bench reads come through the run handle
    let mut cfg = Config::default();
    cfg.connections.clear();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.cpu.pin = false;
    let handle = run::start(&cfg, RunOptions::default()).unwrap();
    let stats = handle.fanout_stats.clone().unwrap();
    let _ws = util::connect(
        handle.local_addr.unwrap(),
        &serde_json::json!({"exchange":"deribit","dataTypes":["trade"]}),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats.load().clients == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stats.load().accepted, 1);
    handle.stop();
}

//! Computed types against tardis-node's own computables (issue 10): `pinfeed simulate` serves
//! every bundled recording, `pinfeed run` serves it, and one client takes `trade` (the source)
//! and the computed types of every symbol. `scripts/tardis_reference.mjs` then runs the `trade`
//! messages that client received through tardis-dev's `compute()` with the same data types,
//! and pinfeed's computed messages must equal tardis-node's byte for byte, in order.
//!
//! Needs Node and the npm package `tardis-dev` (scripts/test.sh installs it under
//! `target/tardis-node`; `TARDIS_NODE_MODULES` names another `node_modules`). Without them
//! the test is skipped, except under `CI`, where it fails.

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use pinfeed::model::Event;
use pinfeed::replay::Replay;
use pinfeed::sim::server::{SimOptions, Simulator};

/// The `node_modules` holding `tardis-dev`, or `None` (skip) outside CI.
fn tardis_node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("TARDIS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tardis-node/node_modules")
        });
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node && dir.join("tardis-dev/package.json").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "node or tardis-dev missing ({}): scripts/test.sh installs them",
        dir.display()
    );
    eprintln!("node or tardis-dev missing: skipping the tardis-node comparison");
    None
}

/// Trades in the bundled recordings, as `pinfeed replay` parses them.
fn recorded_trades() -> usize {
    let mut replay = Replay::prepare(&util::recordings()).unwrap();
    let mut n = 0;
    replay
        .run::<Vec<u8>>(None, |ev, _, _| {
            if let Event::Trade(_) = ev {
                n += 1;
            }
        })
        .unwrap();
    n
}

/// Every message (raw text) one client of a fresh engine receives while the simulator serves
/// every recording once, subscribed to `types` on every served exchange and symbol; returns
/// once `trades` trades arrived and the stream went quiet.
fn capture(types: &[&str], trades: usize) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("pinfeed-tardis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.toml");
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
    // the simulator writes the config, then goes away until the client listens
    let mut sim = Simulator::start(sim_options("127.0.0.1:0".parse().unwrap())).unwrap();
    let sim_addr = sim.addr();
    sim.write_config(&config).unwrap();
    sim.stop();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[server]\n", "[server]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let (engine, addr) = util::start_engine(&config, 1);
    // every exchange pinfeed serves, every symbol (one without symbols here is refused)
    let options: Vec<Value> = pinfeed::model::Exchange::ALL
        .iter()
        .map(|e| json!({"exchange": e.id(), "dataTypes": types}))
        .collect();
    let mut ws = util::connect(addr, &Value::Array(options));
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _sim = Simulator::start(sim_options(sim_addr)).unwrap();
    let (mut lines, mut seen) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(m["type"], "error", "{m}");
                seen += usize::from(m["type"] == "trade");
                lines.push(t.as_str().to_string());
                quiet_since = Instant::now();
            }
            Ok(tungstenite::Message::Close(c)) => panic!("engine closed the client: {c:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if seen >= trades && quiet_since.elapsed() > Duration::from_millis(500) {
                    break;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(
        seen,
        trades,
        "trades received; engine: {:?}",
        engine.stderr.lock().unwrap().last()
    );
    let _ = std::fs::remove_dir_all(&dir);
    lines
}

/// tardis-node's computed messages for the source messages in `lines`.
fn tardis_reference(modules: &std::path::Path, lines: &[String], types: &[&str]) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("pinfeed-tardis-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("source.jsonl");
    let source: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.starts_with("{\"type\":\"trade\"") || l.starts_with("{\"type\":\"book_change\"")
        })
        .collect();
    std::fs::write(&input, source.join("\n") + "\n").unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tardis_reference.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg("--types")
        .arg(types.join(","))
        .arg(&input)
        .env("TARDIS_NODE_MODULES", modules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tardis_reference.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts `ours` equals `reference` line by line, naming the first difference.
fn assert_same(ours: &[String], reference: &[String], what: &str) {
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(
            a, b,
            "{what}: message {i} differs (pinfeed, then tardis-node)"
        );
    }
    assert_eq!(
        ours.len(),
        reference.len(),
        "{what}: pinfeed sent {} messages, tardis-node computed {}",
        ours.len(),
        reference.len()
    );
}

#[test]
fn trade_bars_equal_tardis_node() {
    let Some(modules) = tardis_node_modules() else {
        return;
    };
    let bars = [
        "trade_bar_100ms",
        "trade_bar_1s",
        "trade_bar_5s",
        "trade_bar_1m",
        "trade_bar_3ticks",
        "trade_bar_10ticks",
        "trade_bar_0.01vol",
        "trade_bar_1vol",
        "trade_bar_50vol",
        "trade_bar_5000vol",
    ];
    let mut types = vec!["trade"];
    types.extend(bars);
    let lines = capture(&types, recorded_trades());
    let ours: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("{\"type\":\"trade_bar\""))
        .cloned()
        .collect();
    let reference = tardis_reference(&modules, &lines, &bars);
    // every kind closed some bars, so the comparison has something to compare
    for name in bars {
        let tag = format!("\"name\":\"{name}\"");
        assert!(
            reference.iter().any(|l| l.contains(&tag)),
            "tardis-node closed no {name} bar"
        );
    }
    assert_same(&ours, &reference, "trade_bar");
    eprintln!(
        "{} trade_bar messages equal tardis-node's; first: {}",
        ours.len(),
        ours[0]
    );
}

//! `pinfeed replay` as a user runs it: exit codes, the summary's last line, the files it
//! writes, and errors that name the file and line.

use std::process::Command;

fn pinfeed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pinfeed"))
}

#[test]
fn replays_all_recordings_and_writes_books_and_events() {
    let dir = std::env::temp_dir().join(format!("pinfeed-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let books = dir.join("books.json");
    let events = dir.join("events.jsonl");
    let recordings = pinfeed::sim::recording::bundled_recordings().unwrap();
    let out = pinfeed()
        .arg("replay")
        .args(&recordings)
        .arg("--books-out")
        .arg(&books)
        .arg("--events-out")
        .arg(&events)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last = stderr.lines().last().unwrap();
    // total: FRAMES frames, GAPS gaps, CHECKSUM_FAILURES checksum failures, SECONDS s, RATE frames/s
    let parts: Vec<&str> = last.split(", ").collect();
    assert_eq!(parts.len(), 5, "{last}");
    assert_eq!(parts[0], "total: 5573 frames");
    assert_eq!(parts[1], "0 gaps");
    assert_eq!(parts[2], "0 checksum failures");
    assert!(
        parts[3].ends_with(" s") && parts[3].trim_end_matches(" s").parse::<f64>().unwrap() > 0.0
    );
    assert!(
        parts[4].ends_with(" frames/s")
            && parts[4]
                .trim_end_matches(" frames/s")
                .parse::<f64>()
                .unwrap()
                > 0.0
    );
    for feed in [
        "binance:",
        "binance-futures:",
        "bybit-linear:",
        "bybit-spot:",
        "okx:",
        "deribit:",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(feed)),
            "no summary for {feed}"
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&books).unwrap()).unwrap();
    let btc = &v["bybit"]["BTCUSDT"];
    assert_eq!(btc["status"], "synced");
    assert_eq!(btc["bids"].as_array().unwrap().len(), 20);
    assert!(btc["open_interest"].is_string() && btc["funding_rate"].is_string());
    assert!(v["bybit-spot"]["BTCUSDT"]["open_interest"].is_null());
    let i5 = btc["imbalance_5"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&i5));
    let lines = std::fs::read_to_string(&events).unwrap();
    assert!(lines.lines().count() > 4800);
    // issue 10: a derivative_ticker goes out only when one of its own seven fields changed
    // (548 of Bybit's 740 repeated the previous values when best bid/ask changes counted)
    const FIELDS: [&str; 7] = [
        "lastPrice",
        "openInterest",
        "fundingRate",
        "fundingTimestamp",
        "predictedFundingRate",
        "indexPrice",
        "markPrice",
    ];
    let mut last: std::collections::HashMap<(String, String), Vec<serde_json::Value>> =
        Default::default();
    let mut tickers = 0;
    for line in lines.lines() {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        if m["type"] != "derivative_ticker" {
            continue;
        }
        tickers += 1;
        let key = (m["exchange"].to_string(), m["symbol"].to_string());
        let values: Vec<serde_json::Value> = FIELDS.iter().map(|f| m[*f].clone()).collect();
        let previous = last.insert(key, values.clone());
        assert_ne!(previous, Some(values), "repeated derivative_ticker: {m}");
    }
    assert!(tickers > 100, "{tickers} derivative tickers");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_recording_names_file_and_line_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("pinfeed-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"t\":\"header\",\"format\":2,\"exchange\":\"BYBIT\",\"config\":{}}\n{\"t\":\"recv\",\"conn\":\"x\",\"ts\":1,\n",
    )
    .unwrap();
    let out = pinfeed().arg("replay").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}:2:", bad.display())), "{err}");

    let missing = dir.join("missing.jsonl.zst");
    let out = pinfeed().arg("replay").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("missing.jsonl.zst")
    );

    // a corrupt zstd stream is an error too, not a panic
    let corrupt = dir.join("corrupt.jsonl.zst");
    std::fs::write(&corrupt, [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5]).unwrap();
    let out = pinfeed().arg("replay").arg(&corrupt).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

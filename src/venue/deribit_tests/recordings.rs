//! The Deribit recording, and connect plans.

use super::*;

// ---- recording ----

/// Subscriptions and received frames of DERIBIT.jsonl.zst.
fn recording() -> (Vec<Subscription>, Vec<String>) {
    let rec = testutil::recording("DERIBIT.jsonl.zst");
    let mut url = String::new();
    let mut sent = Vec::new();
    for r in &rec.records {
        match r {
            Record::Connect { addr, .. } => url = addr.clone(),
            Record::Send { data, .. } => sent.push(data.clone()),
            _ => {}
        }
    }
    let subs = subscriptions_from_wire(Feed::Deribit, &url, &sent);
    let frames = testutil::recv_frames(&rec)
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    (subs, frames)
}

#[test]
fn recording_parses_without_errors() {
    let (subs, frames) = recording();
    assert_eq!(subs.len(), 10);
    assert!(subs.iter().all(|s| s.channels
        == Channels::BOOK
            | Channels::TRADES
            | Channels::LIQUIDATIONS
            | Channels::DERIVATIVE_TICKER));
    assert_eq!(subs[0].symbol, "BTC-24SEP21-8000-P");
    let mut reg = Instruments::new();
    for s in &subs {
        reg.intern(s.exchange, &s.symbol);
    }
    let mut p = parser();
    let mut kinds: HashMap<FrameKind, usize> = HashMap::new();
    for frame in &frames {
        let (r, _) = testutil::parse(&mut p, frame, &reg);
        let kind = r.unwrap_or_else(|e| panic!("{e}: {frame}"));
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(frames.len(), 136);
    assert_eq!(kinds[&FrameKind::Ack], 1);
    assert_eq!(kinds[&FrameKind::BookSnapshot], 10);
    assert_eq!(kinds[&FrameKind::BookDelta], 36);
    assert_eq!(kinds[&FrameKind::DerivativeTicker], 89);
}

#[test]
fn recording_book_chains_hold() {
    let (subs, frames) = recording();
    let mut reg = Instruments::new();
    for s in &subs {
        reg.intern(s.exchange, &s.symbol);
    }
    let mut p = parser();
    let mut last: HashMap<InstrumentId, Sequence> = HashMap::new();
    let mut after_snapshot: HashMap<InstrumentId, bool> = HashMap::new();
    let mut applied = 0;
    for frame in &frames {
        let (_, ev) = testutil::parse(&mut p, frame, &reg);
        let Some(Event::BookBegin(begin)) = ev.first() else {
            continue;
        };
        let Sequence::Deribit {
            change_id,
            prev_change_id,
        } = begin.seq
        else {
            panic!("no Deribit sequence: {begin:?}");
        };
        if begin.is_snapshot {
            assert_eq!(prev_change_id, None);
            after_snapshot.insert(begin.instrument, true);
        } else {
            let prev = last.get(&begin.instrument).expect("change before snapshot");
            let Sequence::Deribit {
                change_id: last_change_id,
                ..
            } = *prev
            else {
                unreachable!()
            };
            assert_eq!(prev_change_id, Some(last_change_id));
            assert!(change_id > last_change_id);
            let after = after_snapshot.insert(begin.instrument, false).unwrap();
            assert_eq!(check_sequence(prev, after, &begin.seq), SyncVerdict::Apply);
            applied += 1;
        }
        last.insert(begin.instrument, begin.seq);
    }
    assert_eq!(last.len(), 10);
    assert_eq!(applied, 36);
}

// ---- connect plan ----

#[test]
fn connect_plan_frames() {
    let subs = vec![
        Subscription {
            exchange: X,
            symbol: "BTC-PERPETUAL".into(),
            channels: Channels::ALL,
        },
        Subscription {
            exchange: X,
            symbol: "MATIC_USDC-9MAR24-1D02-C".into(),
            channels: Channels::BOOK,
        },
    ];
    let (ws, rest) = Feed::Deribit.default_endpoints();
    let plan = connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(plan.ws_url, "wss://www.deribit.com/ws/api/v2");
    assert!(plan.snapshot_urls.is_empty());
    assert_eq!(plan.keepalive, None);
    assert_eq!(
        plan.subscribe_frames,
        vec![
            r#"{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.100ms","trades.BTC-PERPETUAL.100ms","ticker.BTC-PERPETUAL.100ms","quote.BTC-PERPETUAL","book.MATIC_USDC-9MAR24-1d02-C.100ms"]}}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":2,"method":"public/set_heartbeat","params":{"interval":30}}"#.to_string(),
        ]
    );
    // liquidations alone still subscribe trades
    let plan = connect_plan(
        Feed::Deribit,
        ws,
        rest,
        &[Subscription {
            exchange: X,
            symbol: "ETH-PERPETUAL".into(),
            channels: Channels::LIQUIDATIONS,
        }],
    );
    assert!(plan.subscribe_frames[0].contains(r#"["trades.ETH-PERPETUAL.100ms"]"#));
}

#[test]
fn connect_plan_round_trips() {
    let subs = vec![
        Subscription {
            exchange: X,
            symbol: "BTC-PERPETUAL".into(),
            channels: Channels::ALL,
        },
        Subscription {
            exchange: X,
            symbol: "ETH-24SEP21-3000-C".into(),
            channels: Channels::BOOK | Channels::DERIVATIVE_TICKER,
        },
        Subscription {
            exchange: X,
            symbol: "XRP_USDC-30JUN23-0D625-C".into(),
            channels: Channels::TRADES | Channels::LIQUIDATIONS | Channels::BOOK_TICKER,
        },
        Subscription {
            exchange: X,
            symbol: "BTC-FS-30SEP22_PERP".into(),
            channels: Channels::BOOK,
        },
    ];
    let (ws, rest) = Feed::Deribit.default_endpoints();
    let plan = connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(
        subscriptions_from_wire(Feed::Deribit, &plan.ws_url, &plan.subscribe_frames),
        subs
    );
    // through the shared dispatch too
    let plan = crate::venue::connect_plan(Feed::Deribit, ws, rest, &subs);
    assert_eq!(
        crate::venue::subscriptions_from_wire(Feed::Deribit, &plan.ws_url, &plan.subscribe_frames),
        subs
    );
    assert!(std::ptr::fn_addr_eq(
        crate::venue::sync_rule(X),
        check_sequence as crate::model::SyncRule
    ));
}

#[test]
fn subscriptions_from_wire_reads_any_interval() {
    let sent = vec![
        r#"{"jsonrpc":"2.0","id":2,"method":"public/set_heartbeat","params":{"interval":10}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":0,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.raw","trades.BTC-PERPETUAL.agg2","book.ETH-PERPETUAL.1.10.100ms","trades.option.BTC.100ms","quote.ETH-PERPETUAL","deribit_price_index.btc_usd"]}}"#.to_string(),
        "garbage".to_string(),
    ];
    let subs = subscriptions_from_wire(Feed::Deribit, "wss://www.deribit.com/ws/api/v2", &sent);
    assert_eq!(
        subs,
        vec![
            Subscription {
                exchange: X,
                symbol: "BTC-PERPETUAL".into(),
                channels: Channels::BOOK | Channels::TRADES | Channels::LIQUIDATIONS,
            },
            Subscription {
                exchange: X,
                symbol: "ETH-PERPETUAL".into(),
                channels: Channels::BOOK | Channels::BOOK_TICKER,
            },
        ]
    );
}

#[test]
fn wire_names_keep_the_strike_decimal_mark() {
    assert_eq!(wire_instrument_name("BTC-PERPETUAL"), "BTC-PERPETUAL");
    assert_eq!(
        wire_instrument_name("BTC-24SEP21-8000-P"),
        "BTC-24SEP21-8000-P"
    );
    assert_eq!(
        wire_instrument_name("MATIC_USDC-9MAR24-1D02-C"),
        "MATIC_USDC-9MAR24-1d02-C"
    );
    assert_eq!(wire_instrument_name("BTC-27DEC24"), "BTC-27DEC24");
    assert_eq!(
        wire_instrument_name("BTC-CSR12-16SEP22-21000_23000"),
        "BTC-CSR12-16SEP22-21000_23000"
    );
}

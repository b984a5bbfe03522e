//! The bench's figures: [`BenchReport`], its JSON object and its table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::Scenario;
use super::client::{BurstSchedule, LoadStats, MessageType};
use super::floor::{Floor, FloorCores};
use super::procstat::CpuUse;

/// Latency percentiles, µs. All zero when `count` is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    /// Samples.
    pub count: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest sample, µs.
    pub max_us: f64,
}

impl Quantiles {
    /// Percentiles of a histogram of ns samples.
    pub fn of_ns(h: &Histogram<u64>) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        let us = |v: u64| v as f64 / 1000.0;
        Quantiles {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }

    fn json(&self) -> Value {
        json!({
            "p50": round3(self.p50_us),
            "p99": round3(self.p99_us),
            "p999": round3(self.p999_us),
            "max": round3(self.max_us),
            "count": self.count,
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The physical floor measured in the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloorReport {
    /// `rtrb` ping-pong hop.
    pub ring: Floor,
    /// Loopback TCP ping-pong hop.
    pub tcp: Floor,
    /// Where it ran.
    pub cores: FloorCores,
}

impl FloorReport {
    /// The floor of one path from a venue socket to a client: two TCP hops (simulator to
    /// engine, engine to client) and two ring hops (ingest to book, book to fan-out), µs.
    pub fn path_p50_us(&self) -> f64 {
        2.0 * self.tcp.hop_p50_us + 2.0 * self.ring.hop_p50_us
    }
}

/// Trade latency with and without L2 bursts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradeIsolation {
    /// Trades sent outside bursts.
    pub quiet: Quantiles,
    /// Trades sent during bursts.
    pub burst: Quantiles,
}

/// What the load clients received, per client.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientSummary {
    /// Clients asked for.
    pub clients: usize,
    /// Clients whose upgrade completed.
    pub connected: usize,
    /// Fewest messages one connected client received in the window.
    pub min_messages: u64,
    /// Most messages one client received in the window.
    pub max_messages: u64,
    /// Clients the server closed (any code), and the count per code.
    pub closes: BTreeMap<u16, u64>,
    /// `seq` values skipped, all clients.
    pub seq_gaps: u64,
    /// Clients whose connection failed.
    pub failed: u64,
    /// Messages per type, all clients.
    pub by_type: BTreeMap<&'static str, u64>,
    /// Latency stamps that went backwards (not recorded).
    pub negative_latencies: u64,
}

/// Every figure of one bench run.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// What fed the engine.
    pub input: String,
    /// What each client subscribed to.
    pub scenario: Scenario,
    /// Wait strategy of the engine's hot threads (`backoff` or `spin`).
    pub wait: &'static str,
    /// Slots of each trade lane.
    pub lane_slots: usize,
    /// Target input rate, frames/s (`None`: as fast as possible).
    pub rate_target_per_s: Option<f64>,
    /// Upstream frames the engine received per second in the window.
    pub rate_in_per_s: f64,
    /// Messages the clients received in the window, all clients.
    pub events_out: u64,
    /// `events_out` per second.
    pub events_out_per_s: f64,
    /// Messages the fan-out queued to clients in the window.
    pub fanout_messages_sent: u64,
    /// `write` calls on client sockets in the window.
    pub fanout_socket_writes: u64,
    /// The measured window, seconds.
    pub duration_s: f64,
    /// Trade end-to-end latency: simulator send (the trade id as unix ns) to client read.
    /// Empty when the input's trade ids are not stamps (recordings).
    pub e2e: Quantiles,
    /// Engine-internal latency: upstream socket read to client socket write (the engine's
    /// `read_to_written` stage, per message per client); the client-side `ingest_to_fanout`
    /// (read to fan-out queued, from `withLatency`) when the engine kept no histograms.
    pub internal: Quantiles,
    /// Upstream frame read in the engine to client read.
    pub ingest_to_client: Quantiles,
    /// Per-stage percentiles: the engine's own (when it keeps them) and the client-side
    /// split `ingest_to_fanout` / `fanout_to_client`.
    pub stages: BTreeMap<String, Quantiles>,
    /// The floor.
    pub floor: FloorReport,
    /// With a burst schedule.
    pub trade_isolation: Option<TradeIsolation>,
    /// Items dropped per queue in the window.
    pub drops: BTreeMap<String, u64>,
    /// Items dropped per queue over the whole run.
    pub drops_total: BTreeMap<String, u64>,
    /// Book/L1 messages conflated for slow clients in the window.
    pub conflations: u64,
    /// Clients closed for backpressure in the window.
    pub slow_client_closes: u64,
    /// The clients.
    pub client_summary: ClientSummary,
    /// CPU per thread name over the window.
    pub cpu: Vec<CpuUse>,
    /// CPU of the engine's threads (ingest, book, fan-out shards, REST) over the window per
    /// upstream frame received, µs.
    pub engine_cpu_us_per_frame: f64,
    /// Per fan-out shard, over the window.
    pub shards: Vec<ShardFigures>,
    /// Peak resident set size of the process, bytes.
    pub rss_peak_bytes: Option<u64>,
    /// Books in sync at the end of the window.
    pub books_synced: u64,
}

/// One fan-out shard's figures over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFigures {
    /// Clients connected at the end.
    pub clients: u64,
    /// Messages queued to its clients.
    pub messages_sent: u64,
    /// `write` calls on its client sockets.
    pub socket_writes: u64,
    /// Messages taken from its trade lanes.
    pub lane_msgs: u64,
    /// Book notices it skipped for a later slot state.
    pub book_states_conflated: u64,
}

/// True for the engine's own threads (not the simulator, the load clients or the bench).
fn engine_thread(name: &str) -> bool {
    ["ingest-", "book", "fanout", "rest"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// What [`build`] assembles.
pub(super) struct Parts {
    pub input: String,
    pub rate_target_per_s: Option<f64>,
    pub frames_in: u64,
    pub window_s: f64,
    pub clients: usize,
    pub connected: usize,
    pub scenario: Scenario,
    pub wait: &'static str,
    pub lane_slots: usize,
    pub load: LoadStats,
    pub engine_stages: BTreeMap<String, Quantiles>,
    pub floor: FloorReport,
    pub burst: Option<BurstSchedule>,
    pub drops: BTreeMap<String, u64>,
    pub drops_total: BTreeMap<String, u64>,
    pub conflations: u64,
    pub slow_client_closes: u64,
    pub fanout_messages_sent: u64,
    pub fanout_socket_writes: u64,
    pub cpu: Vec<CpuUse>,
    pub shards: Vec<ShardFigures>,
    pub rss_peak_bytes: Option<u64>,
    pub books_synced: u64,
}

pub(super) fn build(p: Parts) -> BenchReport {
    let lat = &p.load.latency;
    let mut stages = p.engine_stages;
    let internal = match stages.get("read_to_written") {
        Some(q) if q.count > 0 => *q,
        _ => Quantiles::of_ns(&lat.ingest_to_fanout_ns),
    };
    stages.insert(
        "ingest_to_fanout".into(),
        Quantiles::of_ns(&lat.ingest_to_fanout_ns),
    );
    stages.insert(
        "fanout_to_client".into(),
        Quantiles::of_ns(&lat.fanout_to_client_ns),
    );
    let mut summary = ClientSummary {
        clients: p.clients,
        connected: p.connected,
        min_messages: u64::MAX,
        negative_latencies: lat.negative,
        ..ClientSummary::default()
    };
    for c in &p.load.clients {
        if c.connected {
            summary.min_messages = summary.min_messages.min(c.messages);
            summary.max_messages = summary.max_messages.max(c.messages);
        }
        if let Some(code) = c.close_code {
            *summary.closes.entry(code).or_default() += 1;
        }
        summary.seq_gaps += c.seq_gaps;
        summary.failed += u64::from(c.failed);
        for (k, t) in MessageType::ALL.iter().enumerate() {
            *summary.by_type.entry(t.name()).or_default() += c.by_type[k];
        }
    }
    if summary.min_messages == u64::MAX {
        summary.min_messages = 0;
    }
    let per_s = |n: u64| {
        if p.window_s > 0.0 {
            n as f64 / p.window_s
        } else {
            0.0
        }
    };
    let events_out = p.load.messages();
    BenchReport {
        input: p.input,
        scenario: p.scenario,
        wait: p.wait,
        lane_slots: p.lane_slots,
        rate_target_per_s: p.rate_target_per_s,
        rate_in_per_s: per_s(p.frames_in),
        events_out,
        events_out_per_s: per_s(events_out),
        fanout_messages_sent: p.fanout_messages_sent,
        fanout_socket_writes: p.fanout_socket_writes,
        duration_s: p.window_s,
        e2e: Quantiles::of_ns(&lat.e2e_ns),
        internal,
        ingest_to_client: Quantiles::of_ns(&lat.ingest_to_client_ns),
        stages,
        floor: p.floor,
        trade_isolation: p.burst.map(|_| TradeIsolation {
            quiet: Quantiles::of_ns(&lat.e2e_quiet_ns),
            burst: Quantiles::of_ns(&lat.e2e_burst_ns),
        }),
        drops: p.drops,
        drops_total: p.drops_total,
        conflations: p.conflations,
        slow_client_closes: p.slow_client_closes,
        client_summary: summary,
        engine_cpu_us_per_frame: {
            let engine_s: f64 = p
                .cpu
                .iter()
                .filter(|c| engine_thread(&c.name))
                .map(|c| c.cpu_s)
                .sum();
            if p.frames_in > 0 {
                round3(engine_s * 1e6 / p.frames_in as f64)
            } else {
                0.0
            }
        },
        cpu: p.cpu,
        shards: p.shards,
        rss_peak_bytes: p.rss_peak_bytes,
        books_synced: p.books_synced,
    }
}

fn mib(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| round3(b as f64 / (1024.0 * 1024.0)))
}

impl BenchReport {
    /// The report as one JSON object: latencies in µs, rates per second (see the field
    /// list in `pinfeed bench --help`).
    pub fn to_json(&self) -> Value {
        let s = &self.client_summary;
        json!({
            "input": self.input,
            "scenario": match self.scenario {
                Scenario::All => "all",
                Scenario::Fanout => "fanout",
                Scenario::Split => "split",
            },
            "wait": self.wait,
            "lane_slots": self.lane_slots,
            "rate_target": self.rate_target_per_s.map(|r| r.round()),
            "rate_in": self.rate_in_per_s.round(),
            "events_out": self.events_out,
            "events_out_per_s": self.events_out_per_s.round(),
            "fanout_messages_sent": self.fanout_messages_sent,
            "fanout_socket_writes": self.fanout_socket_writes,
            "messages_per_write": if self.fanout_socket_writes > 0 {
                round3(self.fanout_messages_sent as f64 / self.fanout_socket_writes as f64)
            } else {
                0.0
            },
            "clients": s.clients,
            "clients_connected": s.connected,
            "duration_s": round3(self.duration_s),
            "e2e_us": self.e2e.json(),
            "internal_us": self.internal.json(),
            "ingest_to_client_us": self.ingest_to_client.json(),
            "stages_us": self.stages.iter().map(|(k, q)| (k.clone(), json!({
                "p50": round3(q.p50_us), "p99": round3(q.p99_us), "count": q.count,
            }))).collect::<serde_json::Map<_, _>>(),
            "floor_us": {
                "ring_hop_p50": round3(self.floor.ring.hop_p50_us),
                "ring_hop_p99": round3(self.floor.ring.hop_p99_us),
                "tcp_hop_p50": round3(self.floor.tcp.hop_p50_us),
                "tcp_hop_p99": round3(self.floor.tcp.hop_p99_us),
                "path_p50": round3(self.floor.path_p50_us()),
                "cores": [self.floor.cores.ping, self.floor.cores.echo],
            },
            "trade_isolation": self.trade_isolation.map(|t| json!({
                "quiet_p99_us": round3(t.quiet.p99_us),
                "burst_p99_us": round3(t.burst.p99_us),
                "quiet": t.quiet.json(),
                "burst": t.burst.json(),
            })),
            "drops": self.drops,
            "drops_total": self.drops_total,
            "conflations": self.conflations,
            "slow_client_closes": self.slow_client_closes,
            "per_client": {
                "min_messages": s.min_messages,
                "max_messages": s.max_messages,
                "closes": s.closes.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "seq_gaps": s.seq_gaps,
                "failed": s.failed,
                "negative_latencies": s.negative_latencies,
            },
            "messages_by_type": s.by_type,
            "cpu": self.cpu.iter().map(|c| json!({
                "thread": c.name, "threads": c.threads,
                "cpu_s": round3(c.cpu_s), "core_pct": (c.core_pct * 10.0).round() / 10.0,
            })).collect::<Vec<_>>(),
            "engine_cpu_us_per_frame": self.engine_cpu_us_per_frame,
            "shards": self.shards.iter().map(|s| json!({
                "clients": s.clients,
                "messages_sent": s.messages_sent,
                "messages_sent_per_s": if self.duration_s > 0.0 {
                    (s.messages_sent as f64 / self.duration_s).round()
                } else {
                    0.0
                },
                "socket_writes": s.socket_writes,
                "lane_msgs": s.lane_msgs,
                "book_states_conflated": s.book_states_conflated,
            })).collect::<Vec<_>>(),
            "rss_peak_mib": mib(self.rss_peak_bytes),
            "books_synced": self.books_synced,
        })
    }

    /// The report as a readable table: latencies beside the floor, each as a ratio to the
    /// floor of its path.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let s = &self.client_summary;
        let floor = self.floor.path_p50_us();
        let ratio = |v: f64| {
            if floor > 0.0 {
                format!("{:>8.1}x", v / floor)
            } else {
                "       -".into()
            }
        };
        let _ = writeln!(o, "input        {}", self.input);
        let _ = writeln!(o, "wait         {}", self.wait);
        let _ = writeln!(
            o,
            "rate         target {}  in {:.0} frames/s",
            self.rate_target_per_s
                .map_or("max".to_string(), |r| format!("{r:.0}")),
            self.rate_in_per_s
        );
        let _ = writeln!(
            o,
            "clients      {}/{} connected, {} failed; window {:.2} s",
            s.connected, s.clients, s.failed, self.duration_s
        );
        let _ = writeln!(
            o,
            "delivered    {} messages ({:.0}/s); per client min {} max {}; seq gaps {}",
            self.events_out, self.events_out_per_s, s.min_messages, s.max_messages, s.seq_gaps
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<26}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency (µs)", "count", "p50", "p99", "p99.9", "max", "p50/floor"
        );
        let mut row = |name: &str, q: &Quantiles| {
            if q.count == 0 {
                let _ = writeln!(o, "{name:<26}{:>9}  (no samples)", 0);
            } else {
                let _ = writeln!(
                    o,
                    "{name:<26}{:>9}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{}",
                    q.count,
                    q.p50_us,
                    q.p99_us,
                    q.p999_us,
                    q.max_us,
                    ratio(q.p50_us)
                );
            }
        };
        row("e2e (trade)", &self.e2e);
        row("ingest -> client", &self.ingest_to_client);
        row("internal", &self.internal);
        for (name, q) in &self.stages {
            row(&format!("  stage {name}"), q);
        }
        if let Some(t) = &self.trade_isolation {
            row("trade quiet", &t.quiet);
            row("trade burst", &t.burst);
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "floor (µs)   ring hop p50 {:.3} p99 {:.3} | tcp hop p50 {:.3} p99 {:.3} | \
             path (2 tcp + 2 ring) p50 {:.3}",
            self.floor.ring.hop_p50_us,
            self.floor.ring.hop_p99_us,
            self.floor.tcp.hop_p50_us,
            self.floor.tcp.hop_p99_us,
            floor
        );
        let _ = writeln!(o);
        let _ = write!(o, "drops        ");
        for (q, n) in &self.drops {
            let _ = write!(o, "{q}={n} ");
        }
        let _ = writeln!(
            o,
            "\nfan-out      conflations {} slow-client closes {} closes seen {:?}; {} messages in {} writes",
            self.conflations,
            self.slow_client_closes,
            s.closes,
            self.fanout_messages_sent,
            self.fanout_socket_writes
        );
        let _ = writeln!(o, "by type      {:?}", s.by_type);
        let _ = writeln!(
            o,
            "\n{:<20}{:>8}{:>10}{:>8}",
            "thread", "count", "cpu s", "% core"
        );
        for c in &self.cpu {
            let _ = writeln!(
                o,
                "{:<20}{:>8}{:>10.2}{:>8.1}",
                c.name, c.threads, c.cpu_s, c.core_pct
            );
        }
        let _ = writeln!(
            o,
            "engine CPU   {:.3} µs per upstream frame (ingest, book, fan-out, REST threads)",
            self.engine_cpu_us_per_frame
        );
        for (k, sh) in self.shards.iter().enumerate() {
            let _ = writeln!(
                o,
                "shard {k}      {} clients, {} messages ({:.0}/s), {} writes, {} lane msgs, {} book states conflated",
                sh.clients,
                sh.messages_sent,
                sh.messages_sent as f64 / self.duration_s.max(1e-9),
                sh.socket_writes,
                sh.lane_msgs,
                sh.book_states_conflated
            );
        }
        let _ = writeln!(o, "\npeak RSS     {:.1} MiB", mib(self.rss_peak_bytes));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor(p50: f64) -> Floor {
        Floor {
            round_trips: 100,
            hop_p50_us: p50,
            hop_p99_us: p50 * 2.0,
        }
    }

    fn parts(burst: Option<BurstSchedule>) -> Parts {
        let mut load = LoadStats::new(3);
        for v in 1..=1000u64 {
            // 1..1000 µs, uniform
            load.latency.ingest_to_fanout_ns.record(v * 1000).unwrap();
            load.latency.e2e_ns.record(v * 2000).unwrap();
        }
        load.latency.e2e_quiet_ns.record(5_000).unwrap();
        load.latency.e2e_burst_ns.record(50_000).unwrap();
        load.clients[0].connected = true;
        load.clients[0].messages = 10;
        load.clients[0].by_type[0] = 10;
        load.clients[1].connected = true;
        load.clients[1].messages = 30;
        load.clients[1].by_type[1] = 30;
        load.clients[1].close_code = Some(1008);
        load.clients[2].failed = true;
        Parts {
            input: "test".into(),
            rate_target_per_s: Some(1000.0),
            frames_in: 4000,
            window_s: 2.0,
            clients: 3,
            connected: 2,
            scenario: Scenario::All,
            wait: "backoff",
            lane_slots: 8192,
            load,
            engine_stages: BTreeMap::new(),
            floor: FloorReport {
                ring: floor(0.5),
                tcp: floor(10.0),
                cores: FloorCores::default(),
            },
            burst,
            drops: BTreeMap::from([("fanout".to_string(), 3)]),
            drops_total: BTreeMap::from([("fanout".to_string(), 7)]),
            conflations: 4,
            slow_client_closes: 1,
            fanout_messages_sent: 40,
            fanout_socket_writes: 10,
            cpu: Vec::new(),
            shards: Vec::new(),
            rss_peak_bytes: Some(64 << 20),
            books_synced: 5,
        }
    }

    #[test]
    fn json_has_the_figures() {
        let r = build(parts(None));
        let v = r.to_json();
        assert_eq!(v["rate_target"], 1000.0);
        assert_eq!(v["rate_in"], 2000.0);
        assert_eq!(v["events_out"], 40);
        assert_eq!(v["events_out_per_s"], 20.0);
        assert_eq!(v["clients"], 3);
        // uniform 1..1000 µs: p50 ~500, p99 ~990, max 1000 (3 significant digits)
        let p50 = v["internal_us"]["p50"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        let p99 = v["internal_us"]["p99"].as_f64().unwrap();
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        let max = v["internal_us"]["max"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&max), "{max}");
        let e2e = v["e2e_us"]["p50"].as_f64().unwrap();
        assert!((998.0..=1002.0).contains(&e2e), "{e2e}");
        assert_eq!(
            v["stages_us"]["ingest_to_fanout"]["p50"],
            v["internal_us"]["p50"]
        );
        assert_eq!(v["stages_us"]["fanout_to_client"]["count"], 0);
        assert_eq!(v["floor_us"]["tcp_hop_p50"], 10.0);
        assert_eq!(v["floor_us"]["path_p50"], 21.0);
        assert!(v["trade_isolation"].is_null());
        assert_eq!(v["drops"]["fanout"], 3);
        assert_eq!(v["drops_total"]["fanout"], 7);
        assert_eq!(v["per_client"]["min_messages"], 10);
        assert_eq!(v["per_client"]["max_messages"], 30);
        assert_eq!(v["per_client"]["closes"]["1008"], 1);
        assert_eq!(v["per_client"]["failed"], 1);
        assert_eq!(v["messages_by_type"]["trade"], 10);
        assert_eq!(v["messages_by_type"]["book_change"], 30);
        assert_eq!(v["rss_peak_mib"], 64.0);
    }

    #[test]
    fn trade_isolation_with_a_burst_schedule() {
        let b = BurstSchedule {
            burst: "10x:1s/10s".parse().unwrap(),
            start: std::time::Instant::now(),
            start_wall_ns: 0,
        };
        let r = build(parts(Some(b)));
        let v = r.to_json();
        // 3 significant digits: a bucket's highest equivalent value
        let quiet = v["trade_isolation"]["quiet_p99_us"].as_f64().unwrap();
        let burst = v["trade_isolation"]["burst_p99_us"].as_f64().unwrap();
        assert!((5.0..5.01).contains(&quiet), "{quiet}");
        assert!((50.0..50.1).contains(&burst), "{burst}");
        let t = r.table();
        assert!(
            t.contains("trade quiet") && t.contains("trade burst"),
            "{t}"
        );
    }

    #[test]
    fn table_shows_ratios_to_the_floor() {
        let t = build(parts(None)).table();
        // internal p50 ~500 µs over a 21 µs path floor
        assert!(t.contains("23.8x"), "{t}");
        assert!(t.contains("path (2 tcp + 2 ring) p50 21.000"), "{t}");
        assert!(t.contains("e2e (trade)"), "{t}");
    }
}

#!/usr/bin/env bash
# Soak test: one long-lived engine process under alternating load for DURATION, sampling its
# RSS, open fds, threads and drop counters every interval; PASS/FAIL against the targets
# (RSS growth < 1 % after warm-up, zero drops, zero fd and thread growth).
#
#   usage: scripts/soak.sh DURATION        DURATION: 90s, 3m, 1h, 1h30m (bare number: seconds)
#
# `pinfeed bench` cannot do this: it runs its own engine in-process for one scenario per
# invocation and at most 3600 s (`--duration`), so a 10-client and a 1000-client phase cannot
# share one engine process, nor can a soak outlast an hour. Instead this script starts
#   1. `pinfeed simulate --synthetic --rate SOAK_RATE` (one process, the whole run),
#   2. `pinfeed run --no-pin` on the config the simulator writes (the engine under test, one
#      process for the whole run; plain ws:// and /metrics on free loopback ports),
#   3. per interval, two load-client processes one after the other (python3, raw WebSocket
#      clients that drain bytes without parsing, subscriptions as `pinfeed bench`):
#      SOAK_CLIENTS clients of `--scenario all`, then SOAK_FANOUT_CLIENTS clients of
#      `--scenario fanout`; both see the same input rate (one simulator).
# Each interval: all-phase, fan-out phase, SOAK_SETTLE s with no clients, then the sample, so
# every row is taken at the same point of the cycle (client sockets closed) and fds/threads
# must return to the same value. rss_1000c/fds_1000c are read ~1 s before the fan-out phase
# ends. drops: the sum of the engine's /metrics counters with `drop` in the name (except the
# `_bytes_total` one); d_10c/d_1000c split the interval's new drops by phase (d_1000c includes
# the quiet time after it: a fan-out shard still behind when its clients leave drops then).
# The drop counters overlap (the fan-out ring's `pinfeed_queue_dropped_total{queue="fanout"}`
# counts events, `pinfeed_book_messages_dropped_total` the book messages they belong to), so
# the sum is an alarm (zero or not), not a count of lost messages; the breakdown is printed.
#
# Env: PINFEED_BIN (target/release/pinfeed), SOAK_INTERVAL (60 s), SOAK_RATE (100000 frames/s),
# SOAK_CLIENTS (10), SOAK_FANOUT_CLIENTS (1000), SOAK_SETTLE (3 s), SOAK_ENGINE_ARGS (extra
# `pinfeed run` flags, e.g. "--cpu-fanout 0,1"), SOAK_KEEP=1 keeps the logs directory.
# Exit status: 0 all PASS, 1 a FAIL, 2 usage or start-up error. Needs python3 (3.11+), curl.
set -euo pipefail
export LC_ALL=C

usage() { sed -n 's/^#   usage: /usage: /p' "$0" >&2; exit 2; }
die() { echo "soak: $*" >&2; exit 2; }

parse_duration() {
    local s=$1 total=0 n u
    [[ $s =~ ^([0-9]+[smh]?)+$ ]] || return 1
    while [[ $s =~ ^([0-9]+)([smh]?)(.*)$ ]]; do
        n=$((10#${BASH_REMATCH[1]})) u=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
        case $u in h) n=$((n * 3600)) ;; m) n=$((n * 60)) ;; esac
        total=$((total + n))
    done
    ((total > 0)) && echo "$total"
}

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || usage
duration=$(parse_duration "$1") || { echo "soak: bad DURATION '$1'" >&2; usage; }
interval=${SOAK_INTERVAL:-60}
rate=${SOAK_RATE:-100000}
clients=${SOAK_CLIENTS:-10}
fanout_clients=${SOAK_FANOUT_CLIENTS:-1000}
settle=${SOAK_SETTLE:-3}
for v in interval clients fanout_clients settle; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((interval >= 10)) || die "SOAK_INTERVAL must be at least 10 s"
((interval > settle + 4)) || die "SOAK_INTERVAL must exceed SOAK_SETTLE by more than 4 s"
((duration >= interval)) || die "DURATION ($duration s) is shorter than one interval ($interval s)"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PINFEED_BIN:-$root/target/release/pinfeed}
[[ -x $bin ]] || die "no binary at $bin (cargo build --release, or set PINFEED_BIN)"
command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
# 1000 client sockets in the engine and in the client process
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > fanout_clients + 200)) || die "fd limit $(ulimit -n) too low for $fanout_clients clients"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pinfeed-soak.XXXXXX")
sim_pid="" engine_pid="" client_pid="" nap_pid=""

alive() { [[ -n $1 && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
cleanup() {
    local rc=$? p i
    trap - EXIT INT TERM
    # clients, then the engine, then its input: each TERM, up to 5 s, then KILL
    for p in $nap_pid $client_pid $engine_pid $sim_pid; do
        kill -TERM "$p" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$p" || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ -n ${SOAK_KEEP:-} ]]; then echo "soak: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_us() { echo $((${EPOCHREALTIME/./})); }
# sleep N microseconds, interruptible by the traps
nap() {
    local us=$1
    ((us > 0)) || return 0
    sleep "$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000)))" &
    nap_pid=$!
    wait "$nap_pid" || true
    nap_pid=""
}
secs() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }

# ---- load client (written out, run once per phase) -------------------------------------
cat >"$tmp/load.py" <<'PY'
"""K raw WebSocket clients in one process draining pinfeed's stream for --seconds.

Subscriptions as `pinfeed bench`: `all` (every client: trade, book_change,
book_snapshot_10_100ms, quote, plus derivative_ticker and liquidation on derivatives, on
every instrument of the config) or `fanout` (client k: one instrument's trade and quote,
round robin). Frames are not parsed, only bytes counted, so that one Python process keeps
up; a masked pong every 10 s answers the engine's 30 s heartbeat. A client the engine closes
reconnects after 1 s. Ends with a close frame per client and one JSON line on stdout.
"""
import argparse, base64, errno, json, os, selectors, socket, sys, time, tomllib
import urllib.parse

NON_DERIV = {"binance", "bybit-spot", "okex"}


def exchange_of(feed, symbol):
    if feed in ("bybit-linear", "bybit-inverse"):
        return "bybit"
    if feed == "okx":
        return "okex-swap" if symbol.endswith("-SWAP") else (
            "okex-futures" if symbol.count("-") >= 2 else "okex")
    return feed


def targets(config, scenario, clients):
    with open(config, "rb") as f:
        cfg = tomllib.load(f)
    instruments = [(exchange_of(v["feed"], s), s) for v in cfg["venue"] for s in v["symbols"]]
    common = {"withSeq": True, "withLatency": True}
    if scenario == "all":
        by_ex = {}
        for ex, s in instruments:
            by_ex.setdefault(ex, []).append(s)
        opts = []
        for ex, syms in by_ex.items():
            types = ["trade", "book_change", "book_snapshot_10_100ms", "quote"]
            if ex not in NON_DERIV:
                types += ["derivative_ticker", "liquidation"]
            opts.append({"exchange": ex, "symbols": syms, "dataTypes": types, **common})
        per_client = [opts] * clients
    else:
        per_client = [{"exchange": ex, "symbols": [s], "dataTypes": ["trade", "quote"], **common}
                      for ex, s in (instruments[k % len(instruments)] for k in range(clients))]
    return ["/ws-stream-normalized?options="
            + urllib.parse.quote(json.dumps(o, separators=(",", ":"))) for o in per_client]


def masked(opcode, payload=b""):
    mask = os.urandom(4)
    return (bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


class Client:
    __slots__ = ("i", "sock", "head", "open", "retry_at")

    def __init__(self, i):
        self.i, self.sock, self.head, self.open, self.retry_at = i, None, b"", False, 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--scenario", choices=["all", "fanout"], required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    a = ap.parse_args()
    host, port = a.url.removeprefix("ws://").rsplit(":", 1)
    port = int(port)
    paths = targets(a.config, a.scenario, a.clients)
    sel = selectors.DefaultSelector()
    buf = bytearray(1 << 18)
    st = {"scenario": a.scenario, "clients": a.clients, "connects": 0, "upgraded": 0,
          "connect_errors": 0, "refused": 0, "server_closes": 0, "bytes": 0}
    clients = [Client(i) for i in range(a.clients)]

    def connect(c):
        try:
            s = socket.create_connection((host, port), timeout=5)
        except OSError as e:
            st["connect_errors"] += 1
            print(f"client {c.i}: connect: {e}", file=sys.stderr)
            c.retry_at = time.monotonic() + 1
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET {paths[c.i]} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        s.setblocking(False)
        c.sock, c.head, c.open = s, b"", False
        st["connects"] += 1
        sel.register(s, selectors.EVENT_READ, c)

    def drop(c, why):
        sel.unregister(c.sock)
        c.sock.close()
        c.sock, c.open = None, False
        c.retry_at = time.monotonic() + 1
        st[why] += 1

    def pump(timeout):
        for key, _ in sel.select(timeout):
            c = key.data
            if c.sock is None:
                continue
            try:
                n = c.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                n = 0
            if n == 0:
                if not c.open:
                    print(f"client {c.i}: closed before the upgrade", file=sys.stderr)
                drop(c, "server_closes")
                continue
            st["bytes"] += n
            if not c.open:
                c.head += bytes(buf[:n])
                end = c.head.find(b"\r\n\r\n")
                if end >= 0:
                    if c.head.startswith(b"HTTP/1.1 101"):
                        c.open, c.head = True, b""
                        st["upgraded"] += 1
                    else:
                        print(f"client {c.i}: refused: {c.head[:end].decode(errors='replace')!r}",
                              file=sys.stderr)
                        drop(c, "refused")

    start = time.monotonic()
    end = start + a.seconds
    for c in clients:  # batches of 50, reading in between
        connect(c)
        if c.i % 50 == 49:
            pump(0.02)
    pong, next_pong = masked(0xA), time.monotonic() + 10
    while (now := time.monotonic()) < end:
        pump(min(0.5, end - now))
        now = time.monotonic()
        for c in clients:
            if c.sock is None and c.retry_at <= now < end - 1:
                connect(c)
        if now >= next_pong:
            next_pong = now + 10
            for c in clients:
                if c.open:
                    try:
                        c.sock.send(pong)
                    except OSError as e:
                        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                            drop(c, "server_closes")
    st["open_at_end"] = sum(1 for c in clients if c.open)
    close = masked(0x8, (1000).to_bytes(2, "big"))
    for c in clients:
        if c.sock is not None:
            try:
                c.sock.send(close)
            except OSError:
                pass
            sel.unregister(c.sock)
            c.sock.close()
    elapsed = time.monotonic() - start
    st["seconds"] = round(elapsed, 1)
    st["mib_per_s"] = round(st["bytes"] / elapsed / 2**20, 1)
    print(json.dumps(st), flush=True)


if __name__ == "__main__":
    main()
PY

# ---- simulator and engine -----------------------------------------------------------------
config=$tmp/run.toml
"$bin" simulate --synthetic --rate "$rate" --listen 127.0.0.1:0 --write-config "$config" \
    >"$tmp/sim.out" 2>"$tmp/sim.log" &
sim_pid=$!
for ((i = 0; i < 200; i++)); do
    [[ -s $config ]] && grep -q '^listening on' "$tmp/sim.out" && break
    alive "$sim_pid" || { cat "$tmp/sim.log" >&2; die "simulator exited"; }
    nap 50000
done
[[ -s $config ]] || die "simulator wrote no config"
sed -i '0,/^\[server\]$/s//[server]\nlisten = "127.0.0.1:0"/' "$config"

# shellcheck disable=SC2086 # SOAK_ENGINE_ARGS is a list of flags
"$bin" run --no-pin --config "$config" --metrics-listen 127.0.0.1:0 ${SOAK_ENGINE_ARGS:-} \
    >"$tmp/engine.out" 2>"$tmp/engine.log" &
engine_pid=$!
ws_url="" metrics_url=""
for ((i = 0; i < 400; i++)); do
    ws_url=$(grep -o 'serving ws://[0-9.:]*' "$tmp/engine.log" | head -1 | cut -d' ' -f2 || true)
    metrics_url=$(grep -o 'metrics at http://[0-9.:]*/metrics' "$tmp/engine.log" | head -1 | cut -d' ' -f3 || true)
    [[ -n $ws_url && -n $metrics_url ]] && break
    alive "$engine_pid" || { cat "$tmp/engine.log" >&2; die "engine exited"; }
    nap 50000
done
[[ -n $ws_url ]] || { cat "$tmp/engine.log" >&2; die "engine did not start serving in 20 s"; }
[[ -n $metrics_url ]] || echo "soak: engine serves no /metrics: drops unknown" >&2

# ---- sampling -----------------------------------------------------------------------------
m_drops="?" m_frames=0 m_sent=0 m_confl=0 m_closes=0
read_metrics() {
    if [[ -n $metrics_url ]] && curl -sf --max-time 5 -o "$tmp/metrics.txt" "$metrics_url"; then
        read -r m_drops m_frames m_sent m_confl m_closes < <(awk '
            /^#/ { next }
            { n = $1; sub(/\{.*/, "", n); v = $NF + 0 }
            n ~ /drop/ && n !~ /_bytes_total$/ { d += v }
            n == "pinfeed_frames_total" { f += v }
            n == "pinfeed_client_messages_sent_total" { s += v }
            n == "pinfeed_client_conflations_total" { c += v }
            n == "pinfeed_client_slow_closes_total" || n == "pinfeed_client_heartbeat_timeouts_total" { k += v }
            END { printf "%.0f %.0f %.0f %.0f %.0f\n", d, f, s, c, k }' "$tmp/metrics.txt")
    else
        m_drops="?"
    fi
}
p_rss=0 p_fds=0 p_thr=0
read_proc() {
    alive "$engine_pid" || { echo "FAIL engine process $engine_pid exited (log: $tmp/engine.log)"; tail -5 "$tmp/engine.log" >&2; SOAK_KEEP=1; exit 1; }
    p_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$engine_pid/status")
    p_thr=$(awk '/^Threads:/ { print $2 }' "/proc/$engine_pid/status")
    local fds=("/proc/$engine_pid/fd"/*)
    p_fds=${#fds[@]}
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
sub_drops() { if [[ $1 == "?" || $2 == "?" ]]; then echo "?"; else echo $(($1 - $2)); fi; }
run_phase() { # scenario clients seconds
    python3 "$tmp/load.py" --url "$ws_url" --config "$config" --scenario "$1" --clients "$2" \
        --seconds "$3" >>"$tmp/clients.jsonl" 2>>"$tmp/clients.log" &
    client_pid=$!
}
end_phase() {
    wait "$client_pid" || echo "soak: load client exited with $? (see $tmp/clients.log)" >&2
    client_pid=""
}

# intervals: all SOAK_INTERVAL long, the remainder folded into the last one when under 10 s
n=$((duration / interval)) rest=$((duration % interval))
((rest >= 10)) && n=$((n + 1))
echo "soak: $duration s = $n intervals of ~$interval s; input $rate frames/s (synthetic simulator, pid $sim_pid)"
echo "soak: engine pid $engine_pid at $ws_url, metrics ${metrics_url:-none}; ${SOAK_ENGINE_ARGS:+flags $SOAK_ENGINE_ARGS; }binary $bin"
echo "soak: each interval: $clients clients 'all', then $fanout_clients clients 'fanout', then ${settle} s without clients, then the sample"

nap 2000000 # let the books sync before the baseline
read_proc
read_metrics
t0=$(now_us)
S_t=(0) S_rss=("$p_rss") S_fds=("$p_fds") S_thr=("$p_thr") S_drops=("$m_drops") S_rssl=("-") S_fdsl=("-")
prev_t=$t0 prev_frames=$m_frames prev_sent=$m_sent prev_drops=$m_drops
drops10=0 drops1000=0
hdr='%6s %8s %5s %7s %9s | %7s %8s %9s %9s %7s %9s %7s %6s\n'
# shellcheck disable=SC2059
printf "$hdr" minute rss_mib fds threads drops d_10c d_1000c rss_1000c fds_1000c in_kfps out_kmsg/s confl closes
# shellcheck disable=SC2059
printf "$hdr" 0.0 "$(mib "$p_rss")" "$p_fds" "$p_thr" "$m_drops" - - - - - - "$m_confl" "$m_closes"

for ((k = 1; k <= n; k++)); do
    if ((k == n)); then end_us=$((t0 + duration * 1000000)); else end_us=$((t0 + k * interval * 1000000)); fi
    load_us=$((end_us - settle * 1000000 - $(now_us)))
    # phase 1: SOAK_CLIENTS clients, everything
    run_phase all "$clients" "$(secs $((load_us / 2)))"
    nap $((load_us / 2))
    end_phase
    read_metrics
    d_a=$(sub_drops "$m_drops" "$prev_drops")
    mid_drops=$m_drops
    # phase 2: SOAK_FANOUT_CLIENTS clients, one symbol each; sampled ~1 s before its end
    b_us=$((end_us - settle * 1000000 - $(now_us)))
    ((b_us > 2000000)) || b_us=2000000
    run_phase fanout "$fanout_clients" "$(secs "$b_us")"
    nap $((b_us - 1000000))
    read_proc
    rss_l=$p_rss fds_l=$p_fds
    end_phase
    # quiet: no clients, then the sample
    nap $((end_us - $(now_us)))
    read_proc
    read_metrics
    # a fan-out shard still behind when the clients leave drops into the quiet time too
    d_b=$(sub_drops "$m_drops" "$mid_drops")
    t=$(now_us)
    dt=$((t - prev_t))
    in_kfps=$(awk -v a="$m_frames" -v b="$prev_frames" -v d="$dt" 'BEGIN { printf "%.1f", (a - b) / d * 1000 }')
    out_k=$(awk -v a="$m_sent" -v b="$prev_sent" -v d="$dt" 'BEGIN { printf "%.0f", (a - b) / d * 1000 }')
    [[ $d_a == "?" ]] || drops10=$((drops10 + d_a))
    [[ $d_b == "?" ]] || drops1000=$((drops1000 + d_b))
    S_t+=("$((t - t0))") S_rss+=("$p_rss") S_fds+=("$p_fds") S_thr+=("$p_thr") S_drops+=("$m_drops")
    S_rssl+=("$rss_l") S_fdsl+=("$fds_l")
    minute=$(awk -v u=$((t - t0)) 'BEGIN { printf "%.1f", u / 60e6 }')
    # shellcheck disable=SC2059
    printf "$hdr" "$minute" "$(mib "$p_rss")" "$p_fds" "$p_thr" "$m_drops" "$d_a" "$d_b" \
        "$(mib "$rss_l")" "$fds_l" "$in_kfps" "$out_k" "$m_confl" "$m_closes"
    prev_t=$t prev_frames=$m_frames prev_sent=$m_sent prev_drops=$m_drops
done

# ---- verdict ------------------------------------------------------------------------------
# reference: the 2nd sample (the end of the first interval after the warm-up one), or the
# sample at 10 % of the run when that is later; the 1st when there are only two
ref=$(((n + 9) / 10))
((ref < 2)) && ref=2
((ref >= n)) && ref=$((n > 1 ? n - 1 : 1))
ref_min=$(awk -v u="${S_t[ref]}" 'BEGIN { printf "%.1f", u / 60e6 }')
last_min=$(awk -v u="${S_t[n]}" 'BEGIN { printf "%.1f", u / 60e6 }')
growth=$(awk -v a="${S_rss[n]}" -v b="${S_rss[ref]}" 'BEGIN { printf "%.2f", (a - b) / b * 100 }')
growth_l=$(awk -v a="${S_rssl[n]}" -v b="${S_rssl[ref]}" 'BEGIN { printf "%.2f", (a - b) / b * 100 }')
dfds=$((S_fds[n] - S_fds[ref])) dthr=$((S_thr[n] - S_thr[ref]))
echo
echo "growth after warm-up: sample $ref (minute $ref_min) -> sample $n (minute $last_min)"
echo "  rss       $(mib "${S_rss[ref]}") -> $(mib "${S_rss[n]}") MiB: ${growth} %   (with $fanout_clients clients: $(mib "${S_rssl[ref]}") -> $(mib "${S_rssl[n]}") MiB, ${growth_l} %)"
echo "  fds       ${S_fds[ref]} -> ${S_fds[n]}: delta $dfds   (with $fanout_clients clients: ${S_fdsl[ref]} -> ${S_fdsl[n]})"
echo "  threads   ${S_thr[ref]} -> ${S_thr[n]}: delta $dthr"
if [[ ${S_drops[n]} == "?" ]]; then
    echo "  drops     unknown (no /metrics)"
else
    echo "  drops     ${S_drops[n]} in total since the engine started ($drops10 in the $clients-client phases, $drops1000 in the $fanout_clients-client phases; after warm-up $(sub_drops "${S_drops[n]}" "${S_drops[ref]}"))"
    awk '!/^#/ && $1 ~ /drop/ && $NF + 0 > 0 { printf "            %s %s\n", $1, $NF }' "$tmp/metrics.txt"
fi
if [[ -s $tmp/clients.jsonl ]]; then
    python3 - "$tmp/clients.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for sc in ("all", "fanout"):
    r = [x for x in rows if x["scenario"] == sc]
    if r:
        t = lambda k: sum(x[k] for x in r)
        print(f"  clients   {sc}: {len(r)} phases, {t('upgraded')} upgrades of {t('connects')} "
              f"connects, {t('server_closes')} closed by the engine, {t('connect_errors')} "
              f"connect errors, {t('refused')} refused, {sum(x['mib_per_s'] for x in r) / len(r):.1f} MiB/s read")
PY
fi
((n > 1)) || echo "  note: one sample only: nothing to compare (run longer)"
((n > 2)) || echo "  note: under 3 samples: the reference includes the warm-up interval (run longer)"
fail=0
verdict() { if [[ $1 == PASS ]]; then echo "PASS $2"; else echo "FAIL $2"; fail=1; fi; }
verdict "$(awk -v g="$growth" 'BEGIN { print (g < 1 ? "PASS" : "FAIL") }')" "rss growth ${growth} % (target < 1 %)"
if [[ ${S_drops[n]} == "?" ]]; then verdict FAIL "drops unknown (target 0)"
else verdict "$( ((S_drops[n] == 0)) && echo PASS || echo FAIL)" "drops ${S_drops[n]} (target 0)"; fi
verdict "$( ((dfds == 0)) && echo PASS || echo FAIL)" "fd delta $dfds (target 0)"
verdict "$( ((dthr == 0)) && echo PASS || echo FAIL)" "thread delta $dthr (target 0)"
exit "$fail"

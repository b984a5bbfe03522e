#!/usr/bin/env python3
"""Peak RSS of the engine alone with many clients (issue 8's memory figure).

Starts `pinfeed simulate --synthetic` and `pinfeed run` as two processes, connects CLIENTS
load clients from this (third) process, each to one symbol's trades and quotes (the
`bench --scenario fanout` subscription), reads everything for SECONDS, then prints the
engine process's VmHWM and VmRSS, the messages the clients read, and the engine's
conflation and drop counters from /metrics, as one JSON line.

    python3 scripts/engine_rss.py --clients 1000 --seconds 20 --rate 2000 [--cpu-fanout 0,1]

Needs `pip install websockets` and a release build (`cargo build --release`).
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import websockets

BIN = os.environ.get(
    "PINFEED_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "pinfeed")
)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def client(url, options, counts, i, stop):
    query = urllib.parse.quote_plus(json.dumps(options))
    try:
        async with websockets.connect(
            f"{url}/ws-stream-normalized?options={query}", max_size=None, compression=None
        ) as ws:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), timeout=0.5)
                    counts[i] += 1
                except asyncio.TimeoutError:
                    pass
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        print(f"client {i}: {e}", file=sys.stderr)


async def load(url, targets, seconds):
    counts = [0] * len(targets)
    stop = asyncio.Event()
    tasks = []
    for i, options in enumerate(targets):
        tasks.append(asyncio.create_task(client(url, options, counts, i, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--cpu-fanout", default="1")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pinfeed-rss-")
    config = os.path.join(tmp, "run.toml")
    sim = subprocess.Popen(
        [BIN, "simulate", "--synthetic", "--rate", str(args.rate), "--listen", "127.0.0.1:0",
         "--write-config", config],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sim.stdout.readline()  # listening on ADDR
    for _ in range(100):
        if os.path.exists(config):
            break
        time.sleep(0.05)
    text = open(config).read()
    text = re.sub(r"\[server\]\n", "[server]\nlisten = \"127.0.0.1:0\"\n", text, count=1)
    open(config, "w").write(text)
    engine = subprocess.Popen(
        [BIN, "run", "--no-pin", "--config", config, "--cpu-fanout", args.cpu_fanout,
         "--metrics-listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = metrics = None
    deadline = time.time() + 20
    while (url is None or metrics is None) and time.time() < deadline:
        line = engine.stderr.readline()
        m = re.search(r"serving (ws://[0-9.:]+)", line)
        if m:
            url = m.group(1)
        m = re.search(r"metrics at http://([0-9.:]+)/metrics", line)
        if m:
            metrics = m.group(1)
    # drain the engine's stderr so it never blocks
    threading.Thread(target=lambda: [None for _ in engine.stderr], daemon=True).start()
    # one exchange per client (every symbol of it; an exchange the simulator does not serve
    # is an `error` for that option and the others still serve)
    exchanges = ["binance-futures", "binance-delivery", "binance", "bybit", "bybit-spot",
                 "okex", "okex-swap", "deribit"]
    targets = [[{"exchange": exchanges[i % len(exchanges)], "dataTypes": ["trade", "quote"]},
                {"exchange": "deribit", "symbols": ["BTC-PERPETUAL"], "dataTypes": ["trade"]}]
               for i in range(args.clients)]
    counts = asyncio.run(load(url, targets, args.seconds))
    text = urllib.request.urlopen(f"http://{metrics}/metrics").read().decode()
    out = {
        "clients": args.clients,
        "clients_reading": sum(1 for c in counts if c > 0),
        "messages_read": sum(counts),
        "engine_vm_hwm_mib": round(status_kib(engine.pid, "VmHWM") / 1024, 1),
        "engine_vm_rss_mib": round(status_kib(engine.pid, "VmRSS") / 1024, 1),
        "conflations": metric(text, "pinfeed_client_conflations_total"),
        "queue_drops": metric(text, "pinfeed_queue_dropped_total"),
        "cpu_fanout": args.cpu_fanout,
        "rate": args.rate,
    }
    engine.terminate()
    sim.terminate()
    engine.wait(timeout=20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

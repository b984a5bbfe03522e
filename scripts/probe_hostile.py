#!/usr/bin/env python3
"""Hostile-client probe of a running pinfeed (loopback only, bounded): the scenarios of
issue 9's first list, each with what a canary client saw and what the engine's process did.

    scripts/probe_hostile.py --pid PID --ws 127.0.0.1:9100 --metrics 127.0.0.1:9101

Scenarios:
  fds       1,100 idle client connections and 600 idle /metrics connections, then a scrape
  series    one request for 600 depth-1000 snapshot series (300 names x 2 symbols): RSS
  halfopen  300 sockets that sent 2 bytes, then a real client: time to its first message
Prints one line per scenario; exits 1 if the engine died.
"""

import argparse
import json
import os
import socket
import sys
import time
import urllib.parse

try:
    import websockets.sync.client as wsc
except ImportError:  # pragma: no cover
    sys.exit("needs the websockets package (pip install websockets)")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def host_port(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def scrape(addr, timeout=5):
    try:
        s = socket.create_connection(host_port(addr), timeout=timeout)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return int(data.split(b" ", 2)[1]) if data else 0
    except OSError as e:
        return f"error {e.errno}"


def url(ws, options):
    q = urllib.parse.quote(json.dumps(options, separators=(",", ":")))
    return f"ws://{ws}/ws-stream-normalized?options={q}"


def canary(ws, timeout=10):
    """Seconds until a trade subscriber gets its first message, or an error string."""
    t0 = time.monotonic()
    try:
        opts = {"exchange": "binance-futures", "symbols": ["BTCUSDT"], "dataTypes": ["trade"]}
        with wsc.connect(url(ws, opts), open_timeout=timeout) as c:
            c.recv(timeout=timeout)
        return f"{time.monotonic() - t0:.3f} s"
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        return f"failed: {type(e).__name__}: {e}"


def open_idle(addr, n, payload=b""):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(host_port(addr), timeout=2)
            if payload:
                s.sendall(payload)
            socks.append(s)
        except OSError:
            break
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--ws", default="127.0.0.1:9100")
    ap.add_argument("--metrics", default="127.0.0.1:9101")
    ap.add_argument("--only", default="fds,series,halfopen")
    a = ap.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    only = a.only.split(",")

    if "fds" in only:
        clients = open_idle(a.ws, 1100)
        idle_metrics = open_idle(a.metrics, 600)
        status = scrape(a.metrics)
        print(
            f"fds: {len(clients)} idle clients + {len(idle_metrics)} idle /metrics; "
            f"scrape -> {status}; engine fds {fds(a.pid)}; canary {canary(a.ws)}; "
            f"alive {alive(a.pid)}"
        )
        for s in clients + idle_metrics:
            s.close()
        time.sleep(6)  # past the request timeout
        print(f"fds: after closing them: scrape -> {scrape(a.metrics)}, fds {fds(a.pid)}")

    if "series" in only:
        before = rss_mib(a.pid)
        types = [f"book_snapshot_1000_{n}ms" for n in range(1, 301)]
        opts = {"exchange": "binance-futures", "symbols": ["BTCUSDT", "ETHUSDT"], "dataTypes": types}
        outcome = "served"
        try:
            with wsc.connect(url(a.ws, opts), open_timeout=5, max_size=None) as c:
                first = json.loads(c.recv(timeout=5))
                outcome = f"{first.get('type')}: {first.get('details', '')[:70]}"
                try:
                    c.recv(timeout=5)
                except Exception as e:  # noqa: BLE001
                    outcome += f"; then {type(e).__name__} {getattr(e, 'rcvd', '')}"
        except Exception as e:  # noqa: BLE001
            outcome = f"{type(e).__name__}: {e}"
        time.sleep(1)
        print(
            f"series: 600 depth-1000 series -> {outcome}; RSS {before:.1f} -> "
            f"{rss_mib(a.pid):.1f} MiB; alive {alive(a.pid)}"
        )

    if "halfopen" in only:
        half = open_idle(a.ws, 300, b"GE")
        time.sleep(1)
        print(f"halfopen: 300 sockets that sent 2 bytes; canary {canary(a.ws)}")
        for s in half:
            s.close()

    sys.exit(0 if alive(a.pid) else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A tardis-machine client built on the `websockets` library, for pinfeed's end-to-end tests
and for people who want to watch a stream.

Connects to ws://HOST:PORT/ws-stream-normalized?options=<url-encoded JSON>, prints every
message it receives as one JSON line on stdout, and stops after --seconds, after --count
messages, or when the server closes (the close code and reason go to stderr as
`close CODE REASON`).

    python3 scripts/ws_client.py --url ws://127.0.0.1:9100 \
        --options '[{"exchange":"bybit","symbols":["BTCUSDT"],"dataTypes":["trade"]}]'

Needs `pip install websockets` (scripts/test.sh installs it).
"""
import argparse
import asyncio
import sys
import urllib.parse

import websockets


async def run(url, options, seconds, count):
    query = urllib.parse.quote_plus(options)
    received = 0
    try:
        async with websockets.connect(
            f"{url}/ws-stream-normalized?options={query}", max_size=None, compression=None
        ) as ws:
            async def reader():
                nonlocal received
                async for message in ws:
                    sys.stdout.write(message + "\n")
                    received += 1
                    if count and received >= count:
                        return
            try:
                await asyncio.wait_for(reader(), timeout=seconds)
            except asyncio.TimeoutError:
                pass
            sys.stdout.flush()
    except websockets.ConnectionClosed as e:
        rcvd = e.rcvd
        if rcvd is not None:
            print(f"close {rcvd.code} {rcvd.reason}", file=sys.stderr)
    sys.stdout.flush()
    print(f"received {received}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="ws://127.0.0.1:9100")
    p.add_argument("--options", required=True, help="options JSON (object or array)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--count", type=int, default=0)
    a = p.parse_args()
    asyncio.run(run(a.url, a.options, a.seconds, a.count))


if __name__ == "__main__":
    main()

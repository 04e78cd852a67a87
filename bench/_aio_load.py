"""A grpc.aio load generator, run in its own process by the benchmark.

`python -m bench._aio_load --target HOST:PORT --method /pkg.Svc/Method
--payloads FILE ...` sends pre-serialized requests (the file holds them
back to back, each behind a 4-byte big-endian length) with a generic unary
call and bytes serializers, round-robin over `--channels` connections with
`--concurrency` calls in flight in all. Each call takes the next payload, so
with distinct payloads every call carries a different request until the file
runs out (then it starts over, and says so). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import grpc

CALL_TIMEOUT = 30.0


def read_payloads(path: Path) -> list[bytes]:
    """The length-prefixed messages in `path`."""
    data = path.read_bytes()
    payloads, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        payloads.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    if not payloads:
        raise ValueError("no payloads")
    return payloads


def write_payloads(path: Path, payloads: list[bytes]) -> None:
    """Write messages for `read_payloads`."""
    path.write_bytes(b"".join(struct.pack(">I", len(p)) + p for p in payloads))


async def run(
    target: str,
    method: str,
    payloads: list[bytes],
    *,
    channels: int,
    concurrency: int,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """Drive `method` for warm-up plus `duration` seconds; count and time the calls."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    try:
        for channel in opened:
            await asyncio.wait_for(channel.channel_ready(), 10)
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            channel.unary_unary(method) for channel in opened
        ]
        counter = itertools.count()
        latencies: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        completed = completed_total = 0
        started_at = time.perf_counter()
        measure_from = started_at + warmup
        end = measure_from + duration

        async def worker(call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]) -> None:
            nonlocal completed, completed_total
            count = len(payloads)
            while True:
                began = time.perf_counter()
                if began >= end:
                    return
                payload = payloads[next(counter) % count]
                try:
                    await call(payload, timeout=CALL_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    if began >= measure_from:
                        errors[exc.code().name] += 1
                    continue
                finished = time.perf_counter()
                completed_total += 1
                if measure_from <= finished <= end:
                    completed += 1
                    if began >= measure_from:
                        latencies.append(finished - began)

        await asyncio.gather(*(worker(calls[i % channels]) for i in range(concurrency)))
        sent = next(counter)
    finally:
        for channel in opened:
            await channel.close()
    return {
        "completed": completed,
        "completed_total": completed_total,
        "seconds": duration,
        "latencies_us": [round(x * 1e6) for x in latencies],
        "errors": dict(errors),
        "sent": sent,
        "distinct_payloads": len(payloads),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the JSON result."""
    parser = argparse.ArgumentParser(prog="python -m bench._aio_load")
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--payloads", type=Path, required=True)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=0.0)
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.target,
            args.method,
            read_payloads(args.payloads),
            channels=args.channels,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
        )
    )
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

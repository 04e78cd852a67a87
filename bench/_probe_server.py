"""Serving-model probe: a do-nothing health Check on grpc's sync or asyncio server.

`python -m bench._probe_server --mode sync|aio --port N` serves
`grpc.health.v1.Health/Check` (always SERVING, no interceptor, no logging) on
127.0.0.1:N in one process until SIGTERM. The benchmark drives both modes with
the same h2load load to decide the serving model by measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2

# The same pool size as the identity server's synchronous server.
THREADS = 32
_SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _check(request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> object:
    return _SERVING


async def _check_async(request: health_pb2.HealthCheckRequest, context: object) -> object:
    return _SERVING


def _handler(check: object) -> grpc.GenericRpcHandler:
    method = grpc.unary_unary_rpc_method_handler(
        check,  # type: ignore[arg-type]
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": method})


def serve_sync(port: int) -> None:
    """grpc.server with a thread pool, until SIGTERM."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=THREADS))
    server.add_generic_rpc_handlers((_handler(_check),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(1).wait()


async def serve_aio(port: int) -> None:
    """grpc.aio.server on one event loop, until SIGTERM."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handler(_check_async),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start()
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    """Parse the mode and port, then serve."""
    parser = argparse.ArgumentParser(prog="python -m bench._probe_server")
    parser.add_argument("--mode", choices=("sync", "aio"), required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "sync":
        serve_sync(args.port)
    else:
        asyncio.run(serve_aio(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())

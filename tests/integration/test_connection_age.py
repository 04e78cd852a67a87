"""Old connections are closed gracefully, so clients spread again over workers and replicas."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from identity_server._server import IdentityServer
from identity_server._settings import load_settings
from identity_server.local import LocalCognito
from tests.conftest import wait_serving

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_an_old_connection_is_replaced_and_its_calls_in_flight_finish(
    local_cognito: LocalCognito,
) -> None:
    server = IdentityServer(
        load_settings(local_cognito.environment()), access_log=False, max_connection_age=0.5
    )
    server.start()
    stopper: threading.Thread | None = None
    try:
        wait_serving(server.target)
        states: list[grpc.ChannelConnectivity] = []
        with grpc.insecure_channel(server.target) as channel:
            channel.subscribe(states.append)
            health: Any = health_pb2_grpc.HealthStub(channel)  # the stub is untyped
            # A call that stays open on the first connection.
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
            assert next(watch).status == SERVING

            deadline = time.monotonic() + 10
            while grpc.ChannelConnectivity.IDLE not in states[1:]:
                assert time.monotonic() < deadline, f"never told to reconnect: {states}"
                time.sleep(0.05)
            # The channel let the old connection go: a new call opens a new one.
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING

            # The call opened before the connection aged is still answered on it.
            stopper = threading.Thread(target=server.stop, kwargs={"grace": 2})
            stopper.start()
            assert next(watch).status == NOT_SERVING
    finally:
        if stopper is None:
            server.stop(grace=1)
        else:
            stopper.join(10)

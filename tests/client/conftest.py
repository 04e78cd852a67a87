"""Fixtures of the client's tests: one fake IdentityService per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from identity_client import IdentityClient
from tests.client.client_fakes import FakeServer, start_fake


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeServer]:
    server, fake = start_fake()
    yield fake
    fake.servicer.release.set()
    server.stop(grace=None)


@pytest.fixture
def fake(_fake_server: FakeServer) -> Iterator[FakeServer]:
    """The fake server, with a clean script and records."""
    _fake_server.servicer.reset()
    yield _fake_server
    _fake_server.servicer.release.set()


@pytest.fixture
def client(fake: FakeServer) -> Iterator[IdentityClient]:
    """A blocking client of the fake (fast retries, 10 s deadline)."""
    with IdentityClient(fake.target, fake.config()) as c:
        yield c

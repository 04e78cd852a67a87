"""The request id on the access line: the caller's when it is simple ASCII, else a fresh one."""

from __future__ import annotations

import re

import pytest

from identity_server.api.interceptor import _request_id


class Context:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_a_simple_caller_id_is_kept() -> None:
    assert _request_id(Context(("x-request-id", "req-42.a_B"))) == "req-42.a_B"


@pytest.mark.parametrize(
    "offered",
    ["caf\u00e9-1", "a" * 65, "", 'quote"d', "back\\slash", "line\nbreak", "two words"],
)
def test_anything_else_gets_a_fresh_id(offered: str) -> None:
    chosen = _request_id(Context(("x-request-id", offered)))
    assert chosen != offered
    assert re.fullmatch(r"[0-9a-f]{16}", chosen)


def test_fresh_ids_differ() -> None:
    assert _request_id(Context()) != _request_id(Context())

"""The access line: written straight from its fields, yet the formatter's line exactly."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from identity_server import _logging
from identity_server._logging import JsonFormatter, log_rpc

FIELDS = {
    "method": "/identity.v1.IdentityService/VerifyToken",
    "code": "UNAUTHENTICATED",
    "reason": "TOKEN_EXPIRED",
    "duration_ms": 0.25,
    "request_id": "req-42.a_b",
}
_TIME = re.compile(r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')


@pytest.fixture
def root_alone() -> Iterator[logging.Logger]:
    """`identity_server` as the top of the hierarchy: the handlers on root unreached."""
    top = logging.getLogger("identity_server")
    propagate, level = top.propagate, top.level
    top.propagate = False
    top.setLevel(logging.INFO)
    yield top
    for handler in top.handlers[:]:
        top.removeHandler(handler)
    top.propagate = propagate
    top.setLevel(level)


@pytest.fixture
def records_made() -> Iterator[list[str]]:
    """Names of the loggers whose LogRecords were created during the test."""
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    yield made
    logging.setLogRecordFactory(factory)


def json_stream(root: logging.Logger) -> io.StringIO:
    """A JSON stream handler on `root`, with pytest's capture handlers set aside."""
    for other in root.handlers[:]:
        if type(other) is not logging.StreamHandler:
            root.removeHandler(other)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    return buffer


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_direct_line_is_the_formatters_line(
    root_alone: logging.Logger, records_made: list[str]
) -> None:
    buffer = json_stream(root_alone)
    log_rpc(**FIELDS)  # type: ignore[arg-type]
    direct = buffer.getvalue()
    assert records_made == []  # written without a LogRecord
    # The same fields through a LogRecord and JsonFormatter.
    logging.getLogger("identity_server.rpc").info("rpc", extra=FIELDS)
    formatted = buffer.getvalue()[len(direct) :]

    assert direct.count("\n") == 1
    assert _TIME.search(direct)
    assert _TIME.sub("", direct) == _TIME.sub("", formatted)
    assert json.loads(direct)["duration_ms"] == 0.25


def test_every_plain_json_stream_gets_the_line(
    root_alone: logging.Logger, records_made: list[str]
) -> None:
    first = json_stream(root_alone)
    second = json_stream(logging.getLogger("identity_server.rpc"))
    log_rpc(**FIELDS)  # type: ignore[arg-type]
    assert records_made == []
    assert first.getvalue() == second.getvalue()
    assert json.loads(first.getvalue())["request_id"] == "req-42.a_b"


def test_another_handler_on_the_way_gets_the_ordinary_record(
    root_alone: logging.Logger, records_made: list[str]
) -> None:
    buffer, collect = json_stream(root_alone), Collect()
    root_alone.addHandler(collect)
    log_rpc(**FIELDS)  # type: ignore[arg-type]
    assert records_made == ["identity_server.rpc"]
    assert [r.__dict__["reason"] for r in collect.records] == ["TOKEN_EXPIRED"]
    assert json.loads(buffer.getvalue())["reason"] == "TOKEN_EXPIRED"


@pytest.mark.parametrize("where", ["logger", "handler"])
def test_a_filter_is_obeyed(root_alone: logging.Logger, where: str) -> None:
    buffer = json_stream(root_alone)
    filtered: logging.Filterer = (
        logging.getLogger("identity_server.rpc") if where == "logger" else root_alone.handlers[0]
    )
    drop_all = logging.Filter("nothing.matches.this")
    filtered.addFilter(drop_all)
    try:
        log_rpc(**FIELDS)  # type: ignore[arg-type]
    finally:
        filtered.removeFilter(drop_all)
    assert buffer.getvalue() == ""


def test_nothing_is_written_below_the_configured_level(root_alone: logging.Logger) -> None:
    buffer = json_stream(root_alone)
    root_alone.setLevel(logging.WARNING)
    log_rpc(**FIELDS)  # type: ignore[arg-type]
    assert buffer.getvalue() == ""


def test_a_request_id_holding_a_registered_secret_is_redacted(root_alone: logging.Logger) -> None:
    buffer = json_stream(root_alone)
    _logging.register_secret("Sup3r-Secret-Id")
    log_rpc(**{**FIELDS, "request_id": "x.Sup3r-Secret-Id"})  # type: ignore[arg-type]
    line = buffer.getvalue()
    assert "Sup3r-Secret-Id" not in line
    assert json.loads(line)["request_id"] == "x.[secret]"


def test_timestamps_out_of_order_each_keep_their_own_second() -> None:
    later, earlier = 1_795_326_001.5, 1_795_325_999.25
    assert _logging._timestamp(later) == "2026-11-22T05:40:01.500Z"
    assert _logging._timestamp(earlier) == "2026-11-22T05:39:59.250Z"
    assert _logging._timestamp(later + 0.25) == "2026-11-22T05:40:01.750Z"

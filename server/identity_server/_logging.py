"""Structured JSON logs that leak nothing.

Every record becomes one JSON line. A redaction pass runs over the rendered
message and any exception text: JWTs, e-mail addresses, local codes and every
value registered with `register_secret` are replaced before the line is
written, so even an unexpected exception cannot put a credential in the log.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import threading
import time
from contextvars import ContextVar
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

# One pass finds every kind of sensitive text; the replacement depends on which.
_SENSITIVE = re.compile(
    r"(?P<jwt>\beyJ[\w-]*\.[\w-]*\.[\w-]*)"
    r"|(?P<code>moto-confirmation-code:\S*)"
    r"|(?P<key>(?i:\b(?:password|new_password|code|secret|secret_hash|token|refresh_token|"
    r"access_token|id_token|session|secret_?key|secret_access_key|session_?token))"
    r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
    r"|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
)
# Every match above needs one of these; text without any is left alone cheaply.
_MARKERS = ("eyJ", "@", ":", "=")


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "jwt":
        return "[token]"
    if kind == "code":
        return "[code]"
    if kind == "email":
        return mask_email(match.group(0))
    return f"{match.group('key')}[redacted]"


# Values scrubbed only from the lines of one call (its context): short-lived
# credentials, which the process-wide set would collect for ever.
_call_secrets: ContextVar[tuple[str, ...]] = ContextVar("identity_call_secrets", default=())
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_snapshot: tuple[str, ...] = ()

# Attributes every LogRecord has; anything else was passed in `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def register_secret(value: str) -> None:
    """Scrub this exact value from every later log line (client secret, ...)."""
    global _secrets_snapshot
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)
            _secrets_snapshot = tuple(_secrets)
        _field.cache_clear()  # a cached field may hold the value


def register_call_secrets(*values: str) -> None:
    """Scrub these values from every later log line of the current call.

    For credentials handed out per call (GetAwsCredentials): the access line
    and any error logged in the call's context are scrubbed, and nothing is
    kept once the call is over.
    """
    _call_secrets.set(_call_secrets.get() + tuple(v for v in values if len(v) >= 4))


def mask_email(email: str) -> str:
    """`ada@example.com` -> `a***@e***`: enough to tell mails apart, no more."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***" if domain else "***"


def redact(text: str) -> str:
    """Remove tokens, e-mails, codes and registered secrets from free text."""
    for secret in _secrets_snapshot:
        if secret in text:
            text = text.replace(secret, "[secret]")
    for secret in _call_secrets.get():
        if secret in text:
            text = text.replace(secret, "[secret]")
    if any(marker in text for marker in _MARKERS):
        text = _SENSITIVE.sub(_replace, text)
    return text


# The last second rendered, and its text: one tuple, so threads read a matching pair.
_clock: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """`2026-11-22T05:10:00.123Z`, with one strftime per second, not per line."""
    global _clock
    second = int(created)
    cached_second, text = _clock
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _clock = (second, text)
    return f"{text}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send every log record through the JSON formatter; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


# -- the access line ------------------------------------------------------

_rpc_log = logging.getLogger("identity_server.rpc")
_TERMINATOR = "\n"


def _json_string(value: str) -> str:
    """A redacted value as a JSON string, as `json.dumps` writes it."""
    return _quote(redact(value))


_field = functools.lru_cache(maxsize=256)(_json_string)
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def log_rpc(method: str, code: str, reason: str, duration_ms: float, request_id: str) -> None:
    """One access line per RPC: the `rpc` record with these fields.

    This runs on every call, VerifyToken's included, where the general path
    (a LogRecord, its routing, the formatter's generic pass) cost about as much
    CPU as the call's own work. When every handler the record would reach is a
    plain `StreamHandler` with `JsonFormatter` and nothing filters on the way,
    the line is rendered straight from the fields and written to those streams:
    the same JSON object the formatter makes. Any other set-up (a filter, other
    handlers, pytest's capture) gets the ordinary record.

    Values are redacted and quoted exactly as the formatter does it; method,
    status and reason come from small fixed sets, so theirs are cached.
    """
    if not _rpc_log.isEnabledFor(logging.INFO):
        return
    handlers = _plain_json_handlers(_rpc_log)
    if handlers is None:
        _rpc_log.info(
            "rpc",
            extra={
                "method": method,
                "code": code,
                "reason": reason,
                "duration_ms": duration_ms,
                "request_id": request_id,
            },
        )
        return
    line = (
        f'{{"time":"{_timestamp(time.time())}","level":"info","logger":"identity_server.rpc",'
        f'"pid":{_pid},"message":"rpc","method":{_field(method)},"code":{_field(code)},'
        f'"reason":{_field(reason)},"duration_ms":{duration_ms!r},'
        f'"request_id":{_quote(redact(request_id))}}}{_TERMINATOR}'
    )
    for handler in handlers:
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # noqa: BLE001 - reported the way StreamHandler reports it
            record = _rpc_log.makeRecord(_rpc_log.name, logging.INFO, "", 0, "rpc", (), None)
            handler.handleError(record)
        finally:
            handler.release()


def _plain_json_handlers(logger: logging.Logger) -> list[logging.StreamHandler[Any]] | None:
    """The handlers a record of `logger` reaches, if all are plain JSON streams; else None."""
    if logger.filters:  # only the logger a record starts at filters it, as in Logger.handle
        return None
    found: list[logging.StreamHandler[Any]] = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (
                type(handler) is not logging.StreamHandler
                or handler.terminator != _TERMINATOR
                or type(handler.formatter) is not JsonFormatter
                or handler.filters
                or handler.level > logging.INFO
            ):
                return None
            found.append(handler)
        if not current.propagate:
            break
        current = current.parent
    return found or None

"""Structured JSON logs that leak nothing.

Every record becomes one JSON line. A redaction pass runs over the rendered
message and any exception text: JWTs, e-mail addresses, local codes and every
value registered with `register_secret` are replaced before the line is
written, so even an unexpected exception cannot put a credential in the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

# One pass finds every kind of sensitive text; the replacement depends on which.
_SENSITIVE = re.compile(
    r"(?P<jwt>\beyJ[\w-]*\.[\w-]*\.[\w-]*)"
    r"|(?P<code>moto-confirmation-code:\S*)"
    r"|(?P<key>(?i:\b(?:password|new_password|code|secret|secret_hash|token|refresh_token|"
    r"access_token|id_token|session))['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
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


def mask_email(email: str) -> str:
    """`ada@example.com` -> `a***@e***`: enough to tell mails apart, no more."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***" if domain else "***"


def redact(text: str) -> str:
    """Remove tokens, e-mails, codes and registered secrets from free text."""
    for secret in _secrets_snapshot:
        if secret in text:
            text = text.replace(secret, "[secret]")
    if any(marker in text for marker in _MARKERS):
        text = _SENSITIVE.sub(_replace, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, error."""

    _second = -1
    _second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
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

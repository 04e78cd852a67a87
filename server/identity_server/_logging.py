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

_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_LOCAL_CODE = re.compile(r"moto-confirmation-code:\S*")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|new_password|code|secret|secret_hash|token|refresh_token|"
    r"access_token|id_token|session)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# Attributes every LogRecord has; anything else was passed in `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def register_secret(value: str) -> None:
    """Scrub this exact value from every later log line (client secret, ...)."""
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def mask_email(email: str) -> str:
    """`ada@example.com` -> `a***@e***`: enough to tell mails apart, no more."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***" if domain else "***"


def redact(text: str) -> str:
    """Remove tokens, e-mails, codes and registered secrets from free text."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "[secret]")
    text = _JWT.sub("[token]", text)
    text = _LOCAL_CODE.sub("[code]", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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

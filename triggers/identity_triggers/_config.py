"""Configuration shared by the handlers, read from environment variables."""

from __future__ import annotations

from collections.abc import Mapping


def domains(environ: Mapping[str, str], name: str) -> frozenset[str]:
    """A comma-separated list of e-mail domains, lower-cased; empty when unset."""
    raw = environ.get(name, "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def email_domain(email: str) -> str:
    """The part after the last '@', lower-cased ('' when there is none)."""
    local, at, domain = email.rpartition("@")
    return domain.strip().lower() if at and local else ""

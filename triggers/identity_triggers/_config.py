"""Configuration shared by the handlers, read from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import boto3


def domains(environ: Mapping[str, str], name: str) -> frozenset[str]:
    """A comma-separated list of e-mail domains, lower-cased; empty when unset."""
    raw = environ.get(name, "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def email_domain(email: str) -> str:
    """The part after the last '@', lower-cased ('' when there is none)."""
    local, at, domain = email.rpartition("@")
    return domain.strip().lower() if at and local else ""


def cognito(region: str) -> Any:
    """The cognito-idp client for the pool's region (the local stack's endpoint when set)."""
    return _client(region, os.environ.get("AWS_ENDPOINT_URL") or None)


@lru_cache(maxsize=8)
def _client(region: str, endpoint: str | None) -> Any:
    # One client per region (and endpoint), reused across warm invocations.
    make: Any = boto3.client
    return make("cognito-idp", region_name=region, endpoint_url=endpoint)

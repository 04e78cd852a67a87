"""Configuration: environment variables read once, in `main()`, into a frozen object."""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from identity_server._tls import is_loopback
from identity_server.tokens.jwks import validate_jwks_url

_POOL_ID = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d)_[0-9A-Za-z]+$")
_CLIENT_ID = re.compile(r"^[\w+]{1,128}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")
_SECRET_ID = re.compile(r"^[\w/+=.@:-]{1,2048}$")
_IDENTITY_POOL_ID = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d:[0-9a-f-]{1,42}$")


# Attempt limits: name -> (attempts, window in seconds); IDENTITY_LIMITS overrides
# any of them as `name=attempts/seconds,...` (api/limits.py says what each counts).
DEFAULT_LIMITS: Mapping[str, tuple[int, float]] = {
    "sign_in": (5, 900.0),
    "code": (10, 900.0),
    "mail": (5, 3600.0),
    "caller": (300, 60.0),
}
_LIMIT = re.compile(r"^([a-z_]+)=(\d{1,7})/(\d{1,6})$")


class ConfigError(ValueError):
    """A missing or malformed setting; its message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Holds no secret values."""

    user_pool_id: str
    region: str
    client_id: str
    client_secret_id: str | None
    allowed_client_ids: frozenset[str]
    issuer: str
    jwks_url: str
    aws_endpoint_url: str | None
    listen_host: str
    listen_port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    metrics_listen: tuple[str, int] | None = None
    workers: int = 1
    verify_cache_size: int = 10_000
    reflection: bool = True
    identity_pool_id: str | None = None
    totp_issuer: str = "Identity"
    # Federated sign-in through the pool domain's hosted UI (off without a domain).
    cognito_domain: str | None = None
    redirect_uris: frozenset[str] = frozenset()
    federation_scopes: tuple[str, ...] = ("openid", "email", "profile")
    # Shared state (sign-outs, attempt limits): Redis or Valkey; None keeps it in memory.
    redis_url: str | None = field(default=None, repr=False)
    revocation_grace: float = 30.0
    revocation_on_failure: str = "refuse"
    limits: Mapping[str, tuple[int, float]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    trusted_proxies: frozenset[str] = frozenset()
    # Off: tokens are not checked against sign-outs (for comparison in the bench).
    revocation: bool = True

    @property
    def listen(self) -> str:
        """The `host:port` to bind, with IPv6 hosts in brackets."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity: a container's cpuset, taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform: every CPU
        return os.cpu_count() or 1


def parse_host_port(value: str, variable: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; port 0 means any free port."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value)
    if not match:
        raise ConfigError(f"{variable} must be host:port, got {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ConfigError(f"{variable} has a port out of range: {port}")
    return host, port


_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")


def _web_url(value: str, variable: str, *, base: bool) -> str:
    """An https URL, or http on a loopback host only; `base`: no path, query or fragment."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise ConfigError(f"{variable} has a malformed URL") from None
    host = parts.hostname or ""
    if len(value) > 1024 or not host or parts.username or parts.password or " " in value:
        raise ConfigError(f"{variable} has a malformed URL")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(host)):
        raise ConfigError(f"{variable} must use https (http only on a loopback host)")
    if parts.fragment or (base and (parts.path.strip("/") or parts.query)):
        raise ConfigError(f"{variable} must be a base URL without path, query or fragment")
    return value.rstrip("/") if base else value


def _federation(env: Mapping[str, str]) -> tuple[str | None, frozenset[str], tuple[str, ...]]:
    """COGNITO_DOMAIN, IDENTITY_REDIRECT_URIS (exact URLs) and IDENTITY_FEDERATION_SCOPES."""
    domain_value = env.get("COGNITO_DOMAIN", "").strip()
    domain = _web_url(domain_value, "COGNITO_DOMAIN", base=True) if domain_value else None
    uris = frozenset(
        _web_url(uri.strip(), "IDENTITY_REDIRECT_URIS", base=False)
        for uri in env.get("IDENTITY_REDIRECT_URIS", "").split(",")
        if uri.strip()
    )
    if len(uris) > 100:
        raise ConfigError("IDENTITY_REDIRECT_URIS has more than 100 URLs")
    if domain and not uris:
        raise ConfigError("COGNITO_DOMAIN needs IDENTITY_REDIRECT_URIS (the allowed callback URLs)")
    scopes = tuple(env.get("IDENTITY_FEDERATION_SCOPES", "").split()) or (
        "openid",
        "email",
        "profile",
    )
    if "openid" not in scopes or len(scopes) > 25 or not all(map(_SCOPE.fullmatch, scopes)):
        raise ConfigError("IDENTITY_FEDERATION_SCOPES must include openid and be valid scopes")
    return domain, uris, scopes


def _optional_path(env: Mapping[str, str], variable: str) -> Path | None:
    value = env.get(variable, "").strip()
    return Path(value) if value else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    pool_id = env.get("COGNITO_USER_POOL_ID", "").strip()
    if not pool_id:
        raise ConfigError("COGNITO_USER_POOL_ID is required (for example eu-west-1_AbCdEf123)")
    pool_match = _POOL_ID.fullmatch(pool_id)
    if not pool_match:
        raise ConfigError("COGNITO_USER_POOL_ID is malformed: expected <region>_<id>")
    region = env.get("COGNITO_REGION", "").strip() or pool_match.group(1)
    if not _REGION.fullmatch(region):
        raise ConfigError("COGNITO_REGION is malformed (for example eu-west-1)")

    client_id = env.get("COGNITO_CLIENT_ID", "").strip()
    if not client_id:
        raise ConfigError("COGNITO_CLIENT_ID is required")
    if not _CLIENT_ID.fullmatch(client_id):
        raise ConfigError("COGNITO_CLIENT_ID is malformed")

    secret_id = env.get("COGNITO_CLIENT_SECRET_ID", "").strip() or None
    if secret_id is not None and not _SECRET_ID.fullmatch(secret_id):
        raise ConfigError("COGNITO_CLIENT_SECRET_ID is malformed")

    allowed = {client_id}
    for extra in env.get("IDENTITY_ALLOWED_CLIENT_IDS", "").split(","):
        extra = extra.strip()
        if not extra:
            continue
        if not _CLIENT_ID.fullmatch(extra):
            raise ConfigError("IDENTITY_ALLOWED_CLIENT_IDS has a malformed client id")
        allowed.add(extra)

    issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
    endpoint = env.get("AWS_ENDPOINT_URL", "").strip() or None
    jwks_url = env.get("COGNITO_JWKS_URL", "").strip() or _default_jwks_url(
        issuer, endpoint, pool_id
    )
    try:
        jwks_url = validate_jwks_url(jwks_url)
    except ValueError as exc:
        raise ConfigError(f"COGNITO_JWKS_URL: {exc}") from None

    host, port = parse_host_port(
        env.get("IDENTITY_LISTEN", "").strip() or "127.0.0.1:50051", "IDENTITY_LISTEN"
    )
    tls_cert = _optional_path(env, "IDENTITY_TLS_CERT")
    tls_key = _optional_path(env, "IDENTITY_TLS_KEY")
    tls_client_ca = _optional_path(env, "IDENTITY_TLS_CLIENT_CA")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("IDENTITY_TLS_CERT and IDENTITY_TLS_KEY must be set together")
    if tls_client_ca is not None and tls_cert is None:
        raise ConfigError("IDENTITY_TLS_CLIENT_CA needs IDENTITY_TLS_CERT and IDENTITY_TLS_KEY")

    metrics_value = env.get("IDENTITY_METRICS_LISTEN", "").strip()
    metrics = parse_host_port(metrics_value, "IDENTITY_METRICS_LISTEN") if metrics_value else None

    redis_url = _redis_url(env)
    workers_value = env.get("IDENTITY_WORKERS", "").strip()
    if workers_value:
        if not workers_value.isdigit() or not 1 <= int(workers_value) <= 64:
            raise ConfigError("IDENTITY_WORKERS must be a whole number from 1 to 64")
        workers = int(workers_value)
        if workers > 1 and redis_url is None:
            raise ConfigError(
                "IDENTITY_WORKERS above 1 needs IDENTITY_REDIS_URL: sign-outs and attempt "
                "limits kept in one worker's memory would miss the others"
            )
    else:
        # Without a shared store, one process: its memory is the whole state.
        workers = min(usable_cpus(), 64) if redis_url is not None else 1

    cache_value = env.get("IDENTITY_VERIFY_CACHE_SIZE", "").strip() or "10000"
    if not cache_value.isdigit() or int(cache_value) > 10_000_000:
        raise ConfigError("IDENTITY_VERIFY_CACHE_SIZE must be a whole number from 0 to 10000000")
    totp_issuer = env.get("IDENTITY_TOTP_ISSUER", "").strip() or "Identity"
    if len(totp_issuer) > 64 or not re.fullmatch(r"[^\x00-\x1f\x7f:]+", totp_issuer):
        raise ConfigError("IDENTITY_TOTP_ISSUER must be at most 64 characters, without ':'")
    if workers > 1 and port == 0:
        raise ConfigError("IDENTITY_LISTEN needs a fixed port when IDENTITY_WORKERS is above 1")
    domain, redirect_uris, scopes = _federation(env)

    identity_pool_id = env.get("COGNITO_IDENTITY_POOL_ID", "").strip() or None
    if identity_pool_id is not None and not _IDENTITY_POOL_ID.fullmatch(identity_pool_id):
        raise ConfigError("COGNITO_IDENTITY_POOL_ID is malformed: expected <region>:<uuid>")

    return Settings(
        user_pool_id=pool_id,
        region=region,
        client_id=client_id,
        client_secret_id=secret_id,
        allowed_client_ids=frozenset(allowed),
        issuer=issuer,
        jwks_url=jwks_url,
        aws_endpoint_url=endpoint,
        listen_host=host,
        listen_port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        metrics_listen=metrics,
        workers=workers,
        verify_cache_size=int(cache_value),
        reflection=_flag(env, "IDENTITY_REFLECTION", default=True),
        identity_pool_id=identity_pool_id,
        totp_issuer=totp_issuer,
        cognito_domain=domain,
        redirect_uris=redirect_uris,
        federation_scopes=scopes,
        redis_url=redis_url,
        revocation_grace=_seconds(env, "IDENTITY_REVOCATION_GRACE_SECONDS", 30.0),
        revocation_on_failure=_choice(
            env, "IDENTITY_REVOCATION_ON_STORE_FAILURE", ("refuse", "accept")
        ),
        limits=_limits(env),
        trusted_proxies=_proxies(env),
        revocation=_flag(env, "IDENTITY_REVOCATION", default=True),
    )


def _redis_url(env: Mapping[str, str]) -> str | None:
    """IDENTITY_REDIS_URL: redis:// or rediss:// (TLS), user and password allowed."""
    value = env.get("IDENTITY_REDIS_URL", "").strip()
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError("IDENTITY_REDIS_URL must be redis://host:port or rediss://host:port")
    return value


def _seconds(env: Mapping[str, str], variable: str, default: float) -> float:
    value = env.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > 86400:
        raise ConfigError(f"{variable} must be a whole number of seconds from 0 to 86400")
    return float(value)


def _choice(env: Mapping[str, str], variable: str, choices: tuple[str, ...]) -> str:
    value = env.get(variable, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{variable} must be one of {', '.join(choices)}")
    return value


def _limits(env: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    """DEFAULT_LIMITS with IDENTITY_LIMITS (`sign_in=10/900,caller=300/60`) applied."""
    limits = dict(DEFAULT_LIMITS)
    for item in env.get("IDENTITY_LIMITS", "").split(","):
        item = item.strip()
        if not item:
            continue
        match = _LIMIT.fullmatch(item)
        if (
            not match
            or match.group(1) not in limits
            or int(match.group(2)) == 0  # a limit of 0 would refuse every call
            or int(match.group(3)) == 0
        ):
            raise ConfigError(
                "IDENTITY_LIMITS: expected name=attempts/seconds (both at least 1) with a name "
                f"among "
                f"{', '.join(DEFAULT_LIMITS)}, got {item[:40]!r}"
            )
        limits[match.group(1)] = (int(match.group(2)), float(match.group(3)))
    return limits


def _proxies(env: Mapping[str, str]) -> frozenset[str]:
    """IDENTITY_TRUSTED_PROXIES: addresses of BFFs whose x-forwarded-for is believed."""
    found = set()
    for item in env.get("IDENTITY_TRUSTED_PROXIES", "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            found.add(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(
                f"IDENTITY_TRUSTED_PROXIES: not an IP address: {item[:40]!r}"
            ) from None
    return frozenset(found)


def _default_jwks_url(issuer: str, endpoint: str | None, pool_id: str) -> str:
    """The pool's key set: under the issuer, or where a loopback Cognito serves it.

    A local Cognito stand-in (moto, cognito-local) at a loopback
    `AWS_ENDPOINT_URL` serves the key set at `{endpoint}/{pool}/.well-known/jwks.json`;
    its issuer keeps the AWS form. A remote endpoint (a VPC endpoint, a proxy)
    changes nothing: the key set still comes from the issuer.
    """
    if endpoint is not None:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme in ("http", "https") and is_loopback(parts.hostname or ""):
            return f"{endpoint.rstrip('/')}/{pool_id}/.well-known/jwks.json"
    return f"{issuer}/.well-known/jwks.json"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], variable: str, *, default: bool) -> bool:
    value = env.get(variable, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{variable} must be true or false, got {value[:16]!r}")

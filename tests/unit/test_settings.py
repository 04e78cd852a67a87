"""Settings are read once into a frozen object; bad ones name themselves."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from identity_server._settings import ConfigError, load_settings

BASE = {"COGNITO_USER_POOL_ID": "eu-west-1_AbC123", "COGNITO_CLIENT_ID": "client1"}


def test_defaults_derive_region_issuer_and_key_set_url() -> None:
    settings = load_settings(BASE)
    assert settings.region == "eu-west-1"
    assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert settings.jwks_url == settings.issuer + "/.well-known/jwks.json"
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 50051)
    assert settings.allowed_client_ids == frozenset({"client1"})
    assert settings.client_secret_id is None


def test_settings_are_frozen() -> None:
    settings = load_settings(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.client_id = "other"  # type: ignore[misc]


def test_region_override_and_extra_clients_and_tls() -> None:
    settings = load_settings(
        {
            **BASE,
            "COGNITO_REGION": "us-west-2",
            "IDENTITY_ALLOWED_CLIENT_IDS": "c2, c3,,",
            "IDENTITY_LISTEN": "[::1]:6000",
            "IDENTITY_TLS_CERT": "/tls/cert.pem",
            "IDENTITY_TLS_KEY": "/tls/key.pem",
            "IDENTITY_WORKERS": "3",
            "IDENTITY_REDIS_URL": "rediss://user:pw@cache.example.com:6379/0",
        }
    )
    assert settings.region == "us-west-2"
    assert settings.allowed_client_ids == frozenset({"client1", "c2", "c3"})
    assert settings.listen == "[::1]:6000"
    assert settings.tls_cert == Path("/tls/cert.pem")
    assert settings.workers == 3


@pytest.mark.parametrize(("cpus", "workers"), [({3}, 1), ({0, 2, 5}, 3), (set(range(200)), 64)])
def test_workers_default_to_the_cpus_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch, cpus: set[int], workers: int
) -> None:
    # A container's cpuset or taskset, not the host's CPU count.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus)
    shared = {**BASE, "IDENTITY_REDIS_URL": "redis://127.0.0.1:6379"}
    assert load_settings(shared).workers == workers


def test_one_worker_by_default_without_a_shared_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its memory is then the whole sign-out and attempt-limit state.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert load_settings(BASE).workers == 1


def test_limits_default_and_override() -> None:
    assert load_settings(BASE).limits["sign_in"] == (5, 900.0)
    limits = load_settings({**BASE, "IDENTITY_LIMITS": "caller=20/10, mail=1/60"}).limits
    assert limits["caller"] == (20, 10.0)
    assert limits["mail"] == (1, 60.0)
    assert limits["code"] == (10, 900.0)


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"IDENTITY_WORKERS": "2"}, "IDENTITY_WORKERS above 1 needs IDENTITY_REDIS_URL"),
        ({"IDENTITY_REDIS_URL": "http://cache:6379"}, "IDENTITY_REDIS_URL must be"),
        ({"IDENTITY_LIMITS": "guesses=1/1"}, "IDENTITY_LIMITS"),
        ({"IDENTITY_LIMITS": "caller=1/0"}, "IDENTITY_LIMITS"),
        ({"IDENTITY_LIMITS": "caller=0/60"}, "IDENTITY_LIMITS"),  # would refuse every call
        ({"IDENTITY_TRUSTED_PROXIES": "bff.local"}, "IDENTITY_TRUSTED_PROXIES"),
        ({"IDENTITY_REVOCATION_ON_STORE_FAILURE": "maybe"}, "refuse, accept"),
        ({"IDENTITY_REVOCATION_GRACE_SECONDS": "-1"}, "IDENTITY_REVOCATION_GRACE_SECONDS"),
    ],
)
def test_shared_state_settings_are_checked(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        load_settings({**BASE, **env})


def test_the_redis_url_is_kept_out_of_the_settings_repr() -> None:
    settings = load_settings({**BASE, "IDENTITY_REDIS_URL": "redis://:hunter22@cache:6379"})
    assert settings.redis_url == "redis://:hunter22@cache:6379"
    assert "hunter22" not in repr(settings)


def test_the_identity_pool_is_optional() -> None:
    assert load_settings(BASE).identity_pool_id is None
    pool = "eu-west-1:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
    assert load_settings({**BASE, "COGNITO_IDENTITY_POOL_ID": pool}).identity_pool_id == pool


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"COGNITO_CLIENT_ID": "c"}, "COGNITO_USER_POOL_ID"),
        ({**BASE, "COGNITO_CLIENT_ID": "bad id!"}, "COGNITO_CLIENT_ID"),
        ({**BASE, "COGNITO_REGION": "Mars"}, "COGNITO_REGION"),
        ({**BASE, "IDENTITY_ALLOWED_CLIENT_IDS": "ok,not ok"}, "IDENTITY_ALLOWED_CLIENT_IDS"),
        ({**BASE, "IDENTITY_LISTEN": "127.0.0.1:70000"}, "IDENTITY_LISTEN"),
        ({**BASE, "IDENTITY_WORKERS": "0"}, "IDENTITY_WORKERS"),
        ({**BASE, "IDENTITY_METRICS_LISTEN": "nope"}, "IDENTITY_METRICS_LISTEN"),
        ({**BASE, "COGNITO_JWKS_URL": "http://10.0.0.1/jwks.json"}, "COGNITO_JWKS_URL"),
        ({**BASE, "IDENTITY_TLS_CLIENT_CA": "/ca.pem"}, "IDENTITY_TLS_CLIENT_CA"),
        ({**BASE, "COGNITO_IDENTITY_POOL_ID": "us-east-1_nope"}, "COGNITO_IDENTITY_POOL_ID"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message


def test_plain_http_key_set_is_allowed_on_loopback_only() -> None:
    settings = load_settings(
        {**BASE, "COGNITO_JWKS_URL": "http://127.0.0.1:5000/p/.well-known/jwks.json"}
    )
    assert settings.jwks_url.startswith("http://127.0.0.1:5000/")


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:5000", "http://localhost:5000/", "http://[::1]:5000"]
)
def test_a_loopback_endpoint_gives_the_key_set_url_the_local_cognito_serves(
    endpoint: str,
) -> None:
    settings = load_settings({**BASE, "AWS_ENDPOINT_URL": endpoint})
    assert settings.jwks_url == (f"{endpoint.rstrip('/')}/eu-west-1_AbC123/.well-known/jwks.json")
    # The issuer keeps the AWS form: local stand-ins put it in their tokens.
    assert settings.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"


def test_a_remote_endpoint_or_an_explicit_url_keeps_its_key_set_url() -> None:
    remote = load_settings({**BASE, "AWS_ENDPOINT_URL": "https://vpce.example.com"})
    assert remote.jwks_url == remote.issuer + "/.well-known/jwks.json"
    explicit = load_settings(
        {
            **BASE,
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "COGNITO_JWKS_URL": "https://keys.example.com/jwks.json",
        }
    )
    assert explicit.jwks_url == "https://keys.example.com/jwks.json"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("1", True), ("true", True), ("off", False), ("FALSE", False)],
)
def test_reflection_is_on_unless_turned_off(value: str | None, expected: bool) -> None:
    env = dict(BASE) if value is None else {**BASE, "IDENTITY_REFLECTION": value}
    assert load_settings(env).reflection is expected


def test_a_reflection_setting_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ConfigError, match="IDENTITY_REFLECTION"):
        load_settings({**BASE, "IDENTITY_REFLECTION": "maybe"})

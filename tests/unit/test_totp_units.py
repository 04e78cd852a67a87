"""TOTP pieces without a server: policies, settings, otpauth URIs and request checks."""

from __future__ import annotations

import urllib.parse

import pytest

from identity.v1 import access_policy_pb2
from identity.v1 import identity_service_pb2 as pb
from identity_server._errors import FieldViolation
from identity_server._settings import ConfigError, load_settings
from identity_server.api import validation as check
from identity_server.api.policy import load_policies
from identity_server.api.servicer import otpauth_uri
from tests.unit.test_policies import _service

SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"]
BASE = {"COGNITO_USER_POOL_ID": "eu-west-1_AbC123", "COGNITO_CLIENT_ID": "client1"}


def test_only_totp_set_up_and_confirmation_accept_a_session_instead_of_a_bearer() -> None:
    policies = load_policies(SERVICE)
    allowed = {name.rsplit("/", 1)[1] for name, p in policies.items() if p.session_allowed}
    assert allowed == {"SetUpTotp", "ConfirmTotp"}
    assert not policies["/identity.v1.IdentityService/DisableTotp"].public


def test_session_allowed_without_authenticated_stops_start_up() -> None:
    policy = access_policy_pb2.AccessPolicy(public=True, session_allowed=True)
    with pytest.raises(ValueError, match="session_allowed requires authenticated"):
        load_policies(_service([policy]))  # type: ignore[arg-type]


def test_the_totp_issuer_defaults_and_can_be_set() -> None:
    assert load_settings(BASE).totp_issuer == "Identity"
    assert load_settings({**BASE, "IDENTITY_TOTP_ISSUER": "Acme Shop"}).totp_issuer == "Acme Shop"


@pytest.mark.parametrize("issuer", ["Acme:Shop", "x" * 65, "Acme\nShop"])
def test_a_bad_totp_issuer_is_named(issuer: str) -> None:
    with pytest.raises(ConfigError, match="IDENTITY_TOTP_ISSUER"):
        load_settings({**BASE, "IDENTITY_TOTP_ISSUER": issuer})


def test_otpauth_uri_follows_the_key_uri_format() -> None:
    uri = otpauth_uri("Acme Shop", "ada+mfa@example.com", "JBSWY3DPEHPK3PXP")
    parts = urllib.parse.urlsplit(uri)
    assert uri.startswith("otpauth://totp/Acme%20Shop:ada%2Bmfa@example.com?")
    assert urllib.parse.unquote(parts.path) == "/Acme Shop:ada+mfa@example.com"
    assert urllib.parse.parse_qs(parts.query) == {
        "secret": ["JBSWY3DPEHPK3PXP"],
        "issuer": ["Acme Shop"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


@pytest.mark.parametrize(
    ("code", "ok"),
    [("123456", True), ("000000", True), ("12345", False), ("1234567", False), ("12a456", False)],
)
def test_totp_codes_are_six_digits(code: str, ok: bool) -> None:
    assert (check.totp_code(code) == []) is ok


def test_an_empty_totp_code_is_required() -> None:
    assert check.totp_code("") == [FieldViolation("code", "is required")]


@pytest.mark.parametrize(
    ("session", "ok"),
    [
        ("s" * 20, True),
        ("s" * 2048, True),
        ("s" * 19, False),
        ("s" * 2049, False),
        ("a b" * 10, False),
    ],
)
def test_sessions_are_bounded_printable_ascii(session: str, ok: bool) -> None:
    assert (check.session(session) == []) is ok


def test_an_optional_session_may_be_empty() -> None:
    assert check.session("", required=False) == []
    assert check.session("") == [FieldViolation("session", "is required")]


def test_device_names_are_short_and_printable() -> None:
    assert check.device_name("") == []
    assert check.device_name("Ada's phone") == []
    assert check.device_name("x" * 129) != []
    assert check.device_name("phone\n") != []

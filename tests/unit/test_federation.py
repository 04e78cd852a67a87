"""Federated sign-in pieces on their own: the sealed transaction, the checks, the
hosted UI client's answers to every /oauth2/token error, and the settings."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from identity_server import _context
from identity_server._errors import (
    DeadlineTooShort,
    FederatedSignInFailed,
    FederatedSignInRestart,
    Internal,
    RefreshTokenInvalid,
    Unavailable,
)
from identity_server._settings import ConfigError, load_settings
from identity_server.cognito import federation as fed
from identity_server.cognito.gateway import ClientSecret
from identity_server.cognito.hosted_ui import HostedUi

NOW = 1_800_000_000.0


def _sealer(secret: str = "client-secret", clock: Callable[[], float] = lambda: NOW) -> fed.Sealer:
    return fed.Sealer(lambda: secret, "client1", clock=clock)


def _transaction() -> fed.Transaction:
    return fed.Transaction.new("Google", "https://app.example/callback", NOW)


# --- the sealed transaction -------------------------------------------------------


def test_a_sealed_transaction_opens_to_what_was_sealed() -> None:
    transaction = _transaction()
    sealed = _sealer().seal(transaction)
    assert _sealer().open(sealed) == transaction
    for secret in (transaction.state, transaction.nonce, transaction.code_verifier):
        assert secret not in sealed
    assert len(sealed) < fed.MAX_TRANSACTION


def test_two_seals_of_one_transaction_differ() -> None:
    transaction = _transaction()
    assert _sealer().seal(transaction) != _sealer().seal(transaction)


def test_every_altered_byte_is_refused() -> None:
    sealed = base64.urlsafe_b64decode(_sealer().seal(_transaction()) + "==")
    for index in range(len(sealed)):
        altered = bytearray(sealed)
        altered[index] ^= 0x01
        value = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(FederatedSignInFailed) as caught:
            _sealer().open(value)
        assert caught.value.reason == "FEDERATED_TRANSACTION_INVALID"


@pytest.mark.parametrize("value", ["", "x", "!!!", "A" * 100, "AQ" + "A" * 60])
def test_garbage_is_refused(value: str) -> None:
    with pytest.raises(FederatedSignInFailed) as caught:
        _sealer().open(value)
    assert caught.value.reason == "FEDERATED_TRANSACTION_INVALID"


def test_another_key_or_client_cannot_open_it() -> None:
    sealed = _sealer().seal(_transaction())
    with pytest.raises(FederatedSignInFailed):
        _sealer(secret="another-secret").open(sealed)
    with pytest.raises(FederatedSignInFailed):
        fed.Sealer(lambda: "client-secret", "client2", clock=lambda: NOW).open(sealed)


def test_a_rotated_secret_gives_a_new_key() -> None:
    current = ["secret-one"]
    sealer = fed.Sealer(lambda: current[0], "client1", clock=lambda: NOW)
    transaction = _transaction()
    before = sealer.seal(transaction)
    assert sealer.open(before) == transaction
    current[0] = "secret-two"
    with pytest.raises(FederatedSignInFailed):
        sealer.open(before)  # sealed under the old key
    assert sealer.open(sealer.seal(transaction)) == transaction


def test_without_a_client_secret_each_process_has_its_own_key() -> None:
    one, two = fed.Sealer(None, "c", clock=lambda: NOW), fed.Sealer(None, "c", clock=lambda: NOW)
    sealed = one.seal(_transaction())
    assert one.open(sealed).state
    with pytest.raises(FederatedSignInFailed):
        two.open(sealed)


def test_an_expired_transaction_is_refused_at_its_expiry() -> None:
    sealed = _sealer().seal(_transaction())
    just_before = NOW + fed.TRANSACTION_LIFETIME - 1
    assert _sealer(clock=lambda: just_before).open(sealed)
    with pytest.raises(FederatedSignInFailed) as caught:
        _sealer(clock=lambda: NOW + fed.TRANSACTION_LIFETIME).open(sealed)
    assert caught.value.reason == "FEDERATED_TRANSACTION_EXPIRED"


# --- state, nonce, audience and callback errors --------------------------------


def test_state_must_match_exactly() -> None:
    transaction = _transaction()
    fed.check_state(transaction, transaction.state)
    for wrong in ("", transaction.state[:-1], transaction.state + "x", transaction.nonce):
        with pytest.raises(FederatedSignInFailed) as caught:
            fed.check_state(transaction, wrong)
        assert caught.value.reason == "FEDERATED_STATE_MISMATCH"


def test_the_id_token_needs_this_nonce_and_this_audience() -> None:
    transaction = _transaction()
    fed.check_id_token(transaction, {"nonce": transaction.nonce}, "client1", "client1")
    for claims in ({}, {"nonce": 7}, {"nonce": "other"}):
        with pytest.raises(FederatedSignInFailed) as caught:
            fed.check_id_token(transaction, claims, "client1", "client1")
        assert caught.value.reason == "FEDERATED_NONCE_MISMATCH"
    with pytest.raises(FederatedSignInFailed) as caught:
        fed.check_id_token(transaction, {"nonce": transaction.nonce}, "client2", "client1")
    assert caught.value.reason == "FEDERATED_AUDIENCE_MISMATCH"


@pytest.mark.parametrize(
    ("error", "description", "reason"),
    [
        ("access_denied", "", "FEDERATED_ACCESS_DENIED"),
        ("redirect_mismatch", "", "FEDERATED_REDIRECT_MISMATCH"),
        (
            "invalid_request",
            "PreSignUp failed with error e-mail domain not allowed.",
            "FEDERATED_SIGN_UP_REFUSED",
        ),
        ("server_error", "", "FEDERATED_PROVIDER_ERROR"),
    ],
)
def test_callback_errors_get_clear_reasons(error: str, description: str, reason: str) -> None:
    found = fed.callback_error(error, description)
    assert isinstance(found, FederatedSignInFailed)
    assert found.reason == reason
    assert description not in found.message or not description


def test_the_first_sign_in_after_linking_says_restart() -> None:
    found = fed.callback_error(
        "invalid_request", "Already found an entry for username Google_1234567890 "
    )
    assert isinstance(found, FederatedSignInRestart)
    assert found.reason == "FEDERATED_ACCOUNT_LINKED"
    assert found.code.name == "ABORTED"
    assert "Google_1234567890" not in found.message


def test_the_authorize_url_carries_pkce_state_and_nonce() -> None:
    hosted = HostedUi("https://auth.example.com/", "client1")
    transaction = _transaction()
    federation = fed.Federation(hosted, _sealer(), frozenset(), ("openid", "email"))
    url, sealed = federation.start("Google", "https://app.example/callback")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    opened = _sealer().open(sealed)
    assert url.startswith("https://auth.example.com/oauth2/authorize?")
    assert query["code_challenge"] == fed.code_challenge(opened.code_verifier)
    assert (query["state"], query["nonce"]) == (opened.state, opened.nonce)
    assert query["scope"] == "openid email"
    assert transaction.state != opened.state


def test_code_challenge_is_unpadded_base64url_of_sha256() -> None:
    verifier = "A" * 43
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.b64encode(digest).decode().rstrip("=").replace("+", "-").replace("/", "_")
    assert fed.code_challenge(verifier) == expected
    assert len(expected) == 43


# --- the hosted UI client -----------------------------------------------------------


class FakeDomain:
    """Answers the hosted UI client's requests; remembers what it was sent."""

    def __init__(self, *answers: tuple[int, dict[str, object]]) -> None:
        self.answers = list(answers)
        self.sent: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
        self.sent.append(request)
        status, body = self.answers.pop(0)
        return status, json.dumps(body).encode()

    def form(self, index: int = 0) -> dict[str, str]:
        data = self.sent[index].data
        assert isinstance(data, bytes)
        return dict(urllib.parse.parse_qsl(data.decode()))


TOKENS = {
    "access_token": "a.b.c",
    "id_token": "d.e.f",
    "refresh_token": "r",
    "expires_in": 3600,
    "token_type": "Bearer",
}


def _client(domain: FakeDomain, secret: ClientSecret | None = None) -> HostedUi:
    return HostedUi("https://auth.example.com", "client1", secret, opener=domain)


def test_the_code_is_exchanged_with_basic_auth_verifier_and_redirect_uri() -> None:
    domain = FakeDomain((200, TOKENS))
    tokens = _client(domain, ClientSecret(lambda: "s3cret")).exchange_code(
        "c0de", "https://a/cb", "v" * 43
    )
    assert (tokens.access_token, tokens.id_token, tokens.refresh_token) == ("a.b.c", "d.e.f", "r")
    request = domain.sent[0]
    assert request.full_url == "https://auth.example.com/oauth2/token"
    assert request.get_method() == "POST"
    assert (
        request.get_header("Authorization")
        == "Basic " + base64.b64encode(b"client1:s3cret").decode()
    )
    assert domain.form() == {
        "grant_type": "authorization_code",
        "client_id": "client1",
        "code": "c0de",
        "redirect_uri": "https://a/cb",
        "code_verifier": "v" * 43,
    }
    assert "s3cret" not in repr(tokens)
    assert "a.b.c" not in repr(tokens)


def test_a_client_without_a_secret_sends_no_authorization() -> None:
    domain = FakeDomain((200, TOKENS))
    _client(domain).exchange_code("c", "https://a/cb", "v" * 43)
    assert domain.sent[0].get_header("Authorization") is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("invalid_grant", "FEDERATED_CODE_INVALID"),
        ("invalid_request", "FEDERATED_REQUEST_INVALID"),
        ("unauthorized_client", "FEDERATED_CLIENT_UNAUTHORIZED"),
        ("unsupported_grant_type", "FEDERATED_CLIENT_UNAUTHORIZED"),
        ("invalid_scope", "FEDERATED_SCOPE_INVALID"),
    ],
)
def test_every_token_error_gets_a_clear_reason(error: str, reason: str) -> None:
    with pytest.raises(FederatedSignInFailed) as caught:
        _client(FakeDomain((400, {"error": error}))).exchange_code("c", "https://a/cb", "v" * 43)
    assert caught.value.reason == reason


def test_invalid_client_is_our_configuration_and_retried_after_a_secret_rotation() -> None:
    with pytest.raises(Internal) as caught:
        _client(FakeDomain((400, {"error": "invalid_client"}))).exchange_code("c", "u", "v")
    assert caught.value.reason == "FEDERATED_CLIENT_INVALID"
    values = iter(["old", "new"])
    secret = ClientSecret(lambda: next(values), min_interval=0.0)
    domain = FakeDomain((400, {"error": "invalid_client"}), (200, TOKENS))
    assert _client(domain, secret).exchange_code("c", "u", "v").id_token == "d.e.f"
    assert (
        domain.sent[1].get_header("Authorization")
        == "Basic " + base64.b64encode(b"client1:new").decode()
    )


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_unavailable(status: int) -> None:
    with pytest.raises(Unavailable):
        _client(FakeDomain((status, {}))).exchange_code("c", "u", "v")


def test_an_unreachable_domain_is_unavailable() -> None:
    def refuse(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
        raise ConnectionRefusedError()

    with pytest.raises(Unavailable):
        HostedUi("https://auth.example.com", "c", opener=refuse).exchange_code("c", "u", "v")


def _stalled() -> tuple[Callable[[urllib.request.Request, float], tuple[int, bytes]], Any]:
    """An opener that never answers (a slow drip of bytes, a lookup that hangs)."""
    release = threading.Event()

    def stall(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
        release.wait(30)
        return 200, b"{}"

    return stall, release


def test_a_request_that_never_answers_is_unavailable_after_the_timeout() -> None:
    stall, release = _stalled()
    hosted = HostedUi("https://auth.example.com", "c", timeout=0.2, opener=stall)
    try:
        with pytest.raises(Unavailable):
            hosted.exchange_code("c", "u", "v")
    finally:
        release.set()


def test_a_request_that_outlives_the_callers_deadline_is_deadline_too_short() -> None:
    stall, release = _stalled()
    hosted = HostedUi("https://auth.example.com", "c", timeout=30, opener=stall)
    tokens = _context.enter(time.monotonic() + 0.5, None)
    try:
        with pytest.raises(DeadlineTooShort):
            hosted.exchange_code("c", "u", "v")
    finally:
        _context.leave(tokens)
        release.set()


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        HostedUi("http://auth.example.com", "c")
    assert HostedUi("http://127.0.0.1:9230", "c").domain == "http://127.0.0.1:9230"


def test_an_answer_with_an_empty_access_token_is_internal() -> None:
    with pytest.raises(Internal):
        _client(FakeDomain((200, {**TOKENS, "access_token": ""}))).exchange_code("c", "u", "v")


def test_an_answer_without_tokens_is_internal() -> None:
    with pytest.raises(Internal):
        _client(FakeDomain((200, {"access_token": "a"}))).exchange_code("c", "u", "v")


def test_no_call_is_started_without_time_left() -> None:
    domain = FakeDomain((200, TOKENS))
    tokens = _context.enter(time.monotonic() + 0.01, None)
    try:
        with pytest.raises(DeadlineTooShort):
            _client(domain).exchange_code("c", "u", "v")
    finally:
        _context.leave(tokens)
    assert domain.sent == []


def test_revoke_posts_the_token_and_maps_refusals() -> None:
    domain = FakeDomain((200, {}))
    _client(domain, ClientSecret(lambda: "s")).revoke("refresh-1")
    assert domain.sent[0].full_url == "https://auth.example.com/oauth2/revoke"
    assert domain.form() == {"token": "refresh-1", "client_id": "client1"}
    with pytest.raises(RefreshTokenInvalid):
        _client(FakeDomain((400, {"error": "unsupported_token_type"}))).revoke("x")
    with pytest.raises(Internal):
        _client(FakeDomain((400, {"error": "invalid_client"}))).revoke("x")


def test_logout_url() -> None:
    url = HostedUi("https://auth.example.com", "client1").logout_url("https://app.example/out")
    assert url == (
        "https://auth.example.com/logout?client_id=client1"
        "&logout_uri=https%3A%2F%2Fapp.example%2Fout"
    )


# --- settings ---------------------------------------------------------------------

BASE = {"COGNITO_USER_POOL_ID": "eu-west-1_AbC123", "COGNITO_CLIENT_ID": "client1"}


def test_federation_is_off_without_a_domain() -> None:
    settings = load_settings(BASE)
    assert settings.cognito_domain is None
    assert settings.redirect_uris == frozenset()
    assert settings.federation_scopes == ("openid", "email", "profile")


def test_domain_redirect_uris_and_scopes() -> None:
    settings = load_settings(
        {
            **BASE,
            "COGNITO_DOMAIN": "https://auth.example.com/",
            "IDENTITY_REDIRECT_URIS": "https://app.example/cb, http://localhost:3000/cb",
            "IDENTITY_FEDERATION_SCOPES": "openid email",
        }
    )
    assert settings.cognito_domain == "https://auth.example.com"
    assert settings.redirect_uris == {"https://app.example/cb", "http://localhost:3000/cb"}
    assert settings.federation_scopes == ("openid", "email")


def test_plain_http_counts_as_loopback_exactly_as_the_listener_and_key_set_url_do() -> None:
    # One rule for the whole service (_tls.is_loopback): all of 127.0.0.0/8 and ::1.
    settings = load_settings(
        {
            **BASE,
            "COGNITO_DOMAIN": "http://127.0.0.2:9230",
            "IDENTITY_REDIRECT_URIS": "http://[::1]:3000/cb",
        }
    )
    assert settings.cognito_domain == "http://127.0.0.2:9230"
    with pytest.raises(ConfigError, match="COGNITO_DOMAIN must use https"):
        load_settings(
            {**BASE, "COGNITO_DOMAIN": "http://10.0.0.2", "IDENTITY_REDIRECT_URIS": "https://a/cb"}
        )


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"COGNITO_DOMAIN": "http://auth.example.com"}, "COGNITO_DOMAIN must use https"),
        ({"COGNITO_DOMAIN": "https://auth.example.com/x"}, "COGNITO_DOMAIN must be a base URL"),
        ({"COGNITO_DOMAIN": "https://auth.example.com"}, "needs IDENTITY_REDIRECT_URIS"),
        (
            {
                "COGNITO_DOMAIN": "https://a.example",
                "IDENTITY_REDIRECT_URIS": "http://app.example/cb",
            },
            "IDENTITY_REDIRECT_URIS must use https",
        ),
        (
            {
                "COGNITO_DOMAIN": "https://a.example",
                "IDENTITY_REDIRECT_URIS": "https://u:p@app.example/",
            },
            "IDENTITY_REDIRECT_URIS has a malformed URL",
        ),
        (
            {
                "COGNITO_DOMAIN": "https://a.example",
                "IDENTITY_REDIRECT_URIS": "https://app.example/cb",
                "IDENTITY_FEDERATION_SCOPES": "email profile",
            },
            "must include openid",
        ),
    ],
)
def test_bad_federation_settings_name_themselves(env: dict[str, str], mentions: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env})
    assert mentions in str(caught.value)


def test_http_is_allowed_on_loopback_only() -> None:
    settings = load_settings(
        {
            **BASE,
            "COGNITO_DOMAIN": "http://127.0.0.1:9230",
            "IDENTITY_REDIRECT_URIS": "http://[::1]:8080/cb",
        }
    )
    assert settings.cognito_domain == "http://127.0.0.1:9230"
    assert dataclasses.asdict(settings)["redirect_uris"] == {"http://[::1]:8080/cb"}

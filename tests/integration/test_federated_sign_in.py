"""Google sign-in through the (local) hosted UI, step by step, over HTTP and gRPC.

Every step of the flow and every refusal: the real server on a free port,
the local Cognito and its hosted UI on loopback, the browser played by plain
HTTP requests that read the redirects instead of following them.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server._errors import FederatedSignInFailed, Internal
from identity_server.cognito.federation import Federation, Transaction
from identity_server.cognito.gateway import ClientSecret
from identity_server.cognito.hosted_ui import HostedUi
from identity_server.local.hosted_ui import google_id
from tests.conftest import PASSWORD, RunningServer, User, new_email
from tests.support.hosted_ui import Answer, google, http
from tests.support.rpc import failure

Stub = pb_grpc.IdentityServiceStub
CALLBACK = "https://app.example/callback"
SIGNED_OUT = "https://app.example/signed-out"
GOOGLE = pb.FEDERATED_PROVIDER_GOOGLE


def _start(stub: Stub, redirect_uri: str = CALLBACK) -> pb.StartFederatedSignInResponse:
    request = pb.StartFederatedSignInRequest(redirect_uri=redirect_uri, provider=GOOGLE)
    answer: pb.StartFederatedSignInResponse = stub.StartFederatedSignIn(request, timeout=10)
    return answer


def _complete(
    stub: Stub, callback: Answer | dict[str, str], transaction: str
) -> pb.CompleteFederatedSignInResponse:
    query = callback.query() if isinstance(callback, Answer) else callback
    request = pb.CompleteFederatedSignInRequest(
        code=query.get("code", ""),
        state=query.get("state", ""),
        transaction=transaction,
        error=query.get("error", ""),
        error_description=query.get("error_description", ""),
    )
    answer: pb.CompleteFederatedSignInResponse = stub.CompleteFederatedSignIn(request, timeout=10)
    return answer


def _refused(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    seen = failure(caught.value)
    return seen.code, seen.reason


def _federation(identity_server: RunningServer) -> Federation:
    federation = identity_server.server.federation
    assert federation is not None
    return federation


def _sign_in_with_google(stub: Stub, email: str) -> pb.CompleteFederatedSignInResponse:
    started = _start(stub)
    return _complete(stub, google(started.authorize_url, email), started.transaction)


def _verified_id(stub: Stub, id_token: str) -> pb.VerifyTokenResponse:
    answer: pb.VerifyTokenResponse = stub.VerifyToken(
        pb.VerifyTokenRequest(token=id_token, token_use=pb.TOKEN_USE_ID), timeout=10
    )
    return answer


def _identities(verified: pb.VerifyTokenResponse) -> list[dict[str, Any]]:
    """The `identities` claim, as plain dicts."""
    return [
        json_format.MessageToDict(value.struct_value)
        for value in verified.claims.fields["identities"].list_value.values
    ]


# --- StartFederatedSignIn ------------------------------------------------------


def test_start_returns_an_authorize_url_with_pkce_state_and_nonce(
    stub: Stub, identity_server: RunningServer
) -> None:
    first, second = _start(stub), _start(stub)
    url = urllib.parse.urlsplit(first.authorize_url)
    query = dict(urllib.parse.parse_qsl(url.query))
    assert (
        f"{url.scheme}://{url.netloc}"
        == identity_server.cognito.federation_environment()["COGNITO_DOMAIN"]
    )
    assert url.path == "/oauth2/authorize"
    assert query["identity_provider"] == "Google"
    assert query["response_type"] == "code"
    assert query["client_id"] == identity_server.client_id
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43
    assert len(query["nonce"]) >= 43
    second_query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(second.authorize_url).query))
    for name in ("state", "nonce", "code_challenge"):
        assert query[name] != second_query[name]
        # The transaction is sealed: none of its secrets is readable in it.
        assert query[name] not in first.transaction
    assert 0 < first.expires_in <= 900


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        CALLBACK + "/",
        CALLBACK + "?next=/admin",
        "HTTPS://app.example/callback",
    ],
)
def test_start_refuses_a_redirect_uri_that_is_not_allowed(stub: Stub, redirect_uri: str) -> None:
    code, reason = _refused(lambda: _start(stub, redirect_uri))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REDIRECT_URI_NOT_ALLOWED")


def test_start_refuses_an_unspecified_provider(stub: Stub) -> None:
    request = pb.StartFederatedSignInRequest(redirect_uri=CALLBACK)
    code, reason = _refused(lambda: stub.StartFederatedSignIn(request, timeout=10))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


# --- the whole flow ------------------------------------------------------------------


def test_google_sign_in_ends_with_a_google_identity(
    stub: Stub, identity_server: RunningServer
) -> None:
    email = new_email()
    done = _sign_in_with_google(stub, email)
    assert done.provider == GOOGLE
    assert done.tokens.username == f"Google_{google_id(email)}"
    assert done.tokens.refresh_token
    assert done.tokens.access_token
    verified = _verified_id(stub, done.tokens.id_token)
    assert verified.principal.sub == done.sub
    assert verified.principal.email == email
    assert f"{identity_server.cognito.pool_id}_Google" in verified.principal.groups
    identities = _identities(verified)
    assert [(i["providerName"], i["userId"]) for i in identities] == [("Google", google_id(email))]
    assert verified.claims["email_verified"] is True
    # The access token works with Cognito too (GetUser through GetCurrentUser).
    bearer = (("authorization", f"Bearer {done.tokens.access_token}"),)
    me = stub.GetCurrentUser(pb.GetCurrentUserRequest(), timeout=10, metadata=bearer)
    assert (me.sub, me.email, me.email_verified) == (done.sub, email, True)


def test_a_second_google_sign_in_is_the_same_user(stub: Stub) -> None:
    email = new_email()
    first = _sign_in_with_google(stub, email)
    second = _sign_in_with_google(stub, email)
    assert first.sub == second.sub
    assert first.tokens.username == second.tokens.username


# --- refusals -------------------------------------------------------------------------


def test_complete_refuses_a_wrong_state(stub: Stub) -> None:
    started = _start(stub)
    query = google(started.authorize_url, new_email()).query()
    query["state"] = _start(stub).authorize_url.split("state=")[1].split("&")[0]
    code, reason = _refused(lambda: _complete(stub, query, started.transaction))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_STATE_MISMATCH")


def test_complete_refuses_a_missing_state(stub: Stub) -> None:
    started = _start(stub)
    query = google(started.authorize_url, new_email()).query()
    del query["state"]
    code, reason = _refused(lambda: _complete(stub, query, started.transaction))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_complete_refuses_another_sign_ins_transaction(stub: Stub) -> None:
    started, other = _start(stub), _start(stub)
    callback = google(started.authorize_url, new_email())
    code, reason = _refused(lambda: _complete(stub, callback, other.transaction))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_STATE_MISMATCH")


@pytest.mark.parametrize("position", [0, 20, -5, -1])
def test_complete_refuses_an_altered_transaction(stub: Stub, position: int) -> None:
    started = _start(stub)
    callback = google(started.authorize_url, new_email())
    sealed = list(started.transaction)
    sealed[position] = "A" if sealed[position] != "A" else "B"
    code, reason = _refused(lambda: _complete(stub, callback, "".join(sealed)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_TRANSACTION_INVALID")


def test_complete_refuses_an_expired_transaction(
    stub: Stub, identity_server: RunningServer
) -> None:
    federation = _federation(identity_server)
    started = _start(stub)
    callback = google(started.authorize_url, new_email())
    opened = federation.sealer.open(started.transaction)
    expired = federation.sealer.seal(dataclasses.replace(opened, expires_at=int(time.time()) - 1))
    code, reason = _refused(lambda: _complete(stub, callback, expired))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_TRANSACTION_EXPIRED")
    # The same sign-in with its live transaction still completes.
    assert _complete(stub, callback, started.transaction).provider == GOOGLE


def test_complete_refuses_a_replayed_code(stub: Stub) -> None:
    started = _start(stub)
    callback = google(started.authorize_url, new_email())
    assert _complete(stub, callback, started.transaction).tokens.id_token
    code, reason = _refused(lambda: _complete(stub, callback, started.transaction))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_CODE_INVALID")


def test_complete_refuses_a_wrong_verifier(stub: Stub, identity_server: RunningServer) -> None:
    federation = _federation(identity_server)
    started = _start(stub)
    callback = google(started.authorize_url, new_email())
    opened = federation.sealer.open(started.transaction)
    wrong = federation.sealer.seal(dataclasses.replace(opened, code_verifier="v" * 43))
    code, reason = _refused(lambda: _complete(stub, callback, wrong))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_CODE_INVALID")


def test_complete_refuses_an_id_token_with_another_nonce(
    stub: Stub, identity_server: RunningServer
) -> None:
    federation = _federation(identity_server)
    started = _start(stub)
    callback = google(started.authorize_url, new_email())
    opened = federation.sealer.open(started.transaction)
    other = federation.sealer.seal(dataclasses.replace(opened, nonce="n" * 43))
    code, reason = _refused(lambda: _complete(stub, callback, other))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_NONCE_MISMATCH")


def test_an_error_callback_is_refused_with_its_reason(stub: Stub) -> None:
    started = _start(stub)
    callback = google(started.authorize_url, new_email(), action="cancel")
    assert callback.status == 302
    assert callback.location.startswith(CALLBACK + "?")
    assert callback.query()["error"] == "access_denied"
    assert "code" not in callback.query()
    code, reason = _refused(lambda: _complete(stub, callback, started.transaction))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_ACCESS_DENIED")


def test_an_error_callback_with_a_forged_state_is_a_state_mismatch(stub: Stub) -> None:
    started = _start(stub)
    query = {"error": "access_denied", "state": "forged"}
    code, reason = _refused(lambda: _complete(stub, query, started.transaction))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "FEDERATED_STATE_MISMATCH")


# --- account linking ------------------------------------------------------------------


def test_google_with_the_verified_email_of_an_account_keeps_its_sub(
    stub: Stub, confirmed_user: User
) -> None:
    signed_in = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=PASSWORD), timeout=10
    )
    native = _verified_id(stub, signed_in.tokens.id_token).principal
    # The first sign-in links the identity, and Cognito fails it: start again.
    started = _start(stub)
    callback = google(started.authorize_url, confirmed_user.email)
    assert "Already found an entry for username Google_" in callback.query()["error_description"]
    code, reason = _refused(lambda: _complete(stub, callback, started.transaction))
    assert (code, reason) == (grpc.StatusCode.ABORTED, "FEDERATED_ACCOUNT_LINKED")
    done = _sign_in_with_google(stub, confirmed_user.email)
    verified = _verified_id(stub, done.tokens.id_token)
    assert done.sub == native.sub == verified.principal.sub
    assert verified.principal.groups == native.groups
    providers = [identity["providerName"] for identity in _identities(verified)]
    assert providers == ["Google"]
    # Linking is idempotent: another sign-in is the same account again.
    assert _sign_in_with_google(stub, confirmed_user.email).sub == native.sub
    # And the password still works for the same account.
    again = stub.SignIn(pb.SignInRequest(email=confirmed_user.email, password=PASSWORD), timeout=10)
    assert _verified_id(stub, again.tokens.id_token).principal.sub == native.sub


def test_an_unverified_google_email_is_not_linked(stub: Stub, confirmed_user: User) -> None:
    signed_in = stub.SignIn(
        pb.SignInRequest(email=confirmed_user.email, password=PASSWORD), timeout=10
    )
    native_sub = _verified_id(stub, signed_in.tokens.id_token).principal.sub
    started = _start(stub)
    callback = google(started.authorize_url, confirmed_user.email, verified=False)
    done = _complete(stub, callback, started.transaction)
    assert done.sub != native_sub
    assert done.tokens.username.startswith("Google_")
    assert _verified_id(stub, done.tokens.id_token).claims["email_verified"] is False


# --- sign-out -------------------------------------------------------------------------


def test_federated_sign_out_revokes_and_returns_the_logout_url(
    stub: Stub, identity_server: RunningServer
) -> None:
    done = _sign_in_with_google(stub, new_email())
    bearer = (("authorization", f"Bearer {done.tokens.access_token}"),)
    request = pb.SignOutRequest(refresh_token=done.tokens.refresh_token, logout_uri=SIGNED_OUT)
    answer = stub.SignOut(request, timeout=10, metadata=bearer)
    domain = identity_server.cognito.federation_environment()["COGNITO_DOMAIN"]
    url = urllib.parse.urlsplit(answer.logout_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{domain}/logout"
    assert dict(urllib.parse.parse_qsl(url.query)) == {
        "client_id": identity_server.client_id,
        "logout_uri": SIGNED_OUT,
    }
    # The hosted UI's /logout clears its cookie and goes to the sign-out URL.
    logout = http(answer.logout_url)
    assert (logout.status, logout.location) == (302, SIGNED_OUT)
    # The refresh token no longer works at /oauth2/token.
    hosted = _hosted(identity_server)
    assert hosted.status_of_refresh(done.tokens.refresh_token) == (400, "invalid_grant")


def test_sign_out_refuses_a_logout_uri_that_is_not_allowed(stub: Stub) -> None:
    done = _sign_in_with_google(stub, new_email())
    bearer = (("authorization", f"Bearer {done.tokens.access_token}"),)
    request = pb.SignOutRequest(refresh_token=done.tokens.refresh_token, logout_uri=CALLBACK + "x")
    code, reason = _refused(lambda: stub.SignOut(request, timeout=10, metadata=bearer))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REDIRECT_URI_NOT_ALLOWED")


# --- the hosted UI's own endpoints -------------------------------------------------


@dataclasses.dataclass
class _Hosted:
    url: str
    client_id: str
    secret: str

    def token(self, form: dict[str, str], secret: str | None = None) -> tuple[int, dict[str, Any]]:
        import base64

        pair = f"{self.client_id}:{self.secret if secret is None else secret}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        answer = http(f"{self.url}/oauth2/token", form, headers)
        return answer.status, json.loads(answer.body or "{}")

    def status_of_refresh(self, refresh_token: str) -> tuple[int, str]:
        status, body = self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        return status, str(body.get("error", ""))


def _hosted(identity_server: RunningServer) -> _Hosted:
    cognito = identity_server.cognito
    secret = ClientSecret.from_secrets_manager(
        cognito.client("secretsmanager"), cognito.secret_name
    )
    return _Hosted(
        cognito.federation_environment()["COGNITO_DOMAIN"], cognito.client_id, secret.value
    )


def _code_for(stub: Stub, identity_server: RunningServer) -> tuple[dict[str, str], Transaction]:
    started = _start(stub)
    query = google(started.authorize_url, new_email()).query()
    return query, _federation(identity_server).sealer.open(started.transaction)


def test_token_endpoint_refuses_a_wrong_client_secret(
    stub: Stub, identity_server: RunningServer
) -> None:
    hosted = _hosted(identity_server)
    query, transaction = _code_for(stub, identity_server)
    form = {
        "grant_type": "authorization_code",
        "code": query["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": transaction.code_verifier,
    }
    assert hosted.token(form, secret="wrong")[0] == 400
    assert hosted.token(form, secret="wrong")[1]["error"] == "invalid_client"
    # The service maps it to a clear reason (its own configuration is wrong).
    client = HostedUi(hosted.url, hosted.client_id, ClientSecret(lambda: "wrong"))
    with pytest.raises(Internal) as caught:
        client.exchange_code(query["code"], CALLBACK, transaction.code_verifier)
    assert caught.value.reason == "FEDERATED_CLIENT_INVALID"


def test_token_endpoint_binds_the_code_to_its_redirect_uri(
    stub: Stub, identity_server: RunningServer
) -> None:
    hosted = _hosted(identity_server)
    query, transaction = _code_for(stub, identity_server)
    client = HostedUi(hosted.url, hosted.client_id, ClientSecret(lambda: hosted.secret))
    with pytest.raises(FederatedSignInFailed) as caught:
        client.exchange_code(query["code"], SIGNED_OUT, transaction.code_verifier)
    assert caught.value.reason == "FEDERATED_CODE_INVALID"
    # Presented once, the code is spent, even with the right redirect URI now.
    with pytest.raises(FederatedSignInFailed):
        client.exchange_code(query["code"], CALLBACK, transaction.code_verifier)


def test_token_endpoint_refuses_other_grants_and_serves_refresh(
    stub: Stub, identity_server: RunningServer
) -> None:
    hosted = _hosted(identity_server)
    assert hosted.token({"grant_type": "password"}) == (400, {"error": "unsupported_grant_type"})
    done = _sign_in_with_google(stub, new_email())
    status, body = hosted.token(
        {"grant_type": "refresh_token", "refresh_token": done.tokens.refresh_token}
    )
    assert status == 200
    assert "refresh_token" not in body
    assert _verified_id(stub, body["id_token"]).principal.sub == done.sub


def test_authorize_refuses_unregistered_redirects_and_plain_pkce(
    stub: Stub, identity_server: RunningServer
) -> None:
    url = _start(stub).authorize_url
    bad_redirect = url.replace(urllib.parse.quote(CALLBACK, safe=""), "https%3A%2F%2Fevil.example")
    answer = http(bad_redirect)
    assert answer.status == 400
    assert not answer.location
    assert "redirect_mismatch" in answer.body
    plain = http(url.replace("code_challenge_method=S256", "code_challenge_method=plain"))
    assert plain.status == 302
    assert plain.query()["error"] == "invalid_request"
    assert plain.location.startswith(CALLBACK + "?")


def test_user_info_and_discovery(stub: Stub, identity_server: RunningServer) -> None:
    hosted = _hosted(identity_server)
    email = new_email()
    done = _sign_in_with_google(stub, email)
    info = http(
        f"{hosted.url}/oauth2/userInfo",
        headers={"Authorization": f"Bearer {done.tokens.access_token}"},
    )
    assert info.status == 200
    assert json.loads(info.body)["email"] == email
    assert http(f"{hosted.url}/oauth2/userInfo").status == 401
    discovery = json.loads(http(f"{hosted.url}/.well-known/openid-configuration").body)
    assert discovery["issuer"] == identity_server.issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["token_endpoint"] == f"{hosted.url}/oauth2/token"


@pytest.mark.slow
def test_make_run_prints_where_to_try_google_sign_in() -> None:
    import os
    import queue
    import re
    import subprocess
    import sys
    import threading

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "IDENTITY_"))}
    env = {
        **clean,
        "LOCAL_COGNITO_PORT": "0",
        "LOCAL_HOSTED_UI_PORT": "0",
        "LOCAL_DEMO_PORT": "0",
        "IDENTITY_LISTEN": "127.0.0.1:0",
        "IDENTITY_WORKERS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "identity_server.local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        printed = ""
        deadline = time.monotonic() + 60
        while "Stop with Ctrl-C" not in printed and time.monotonic() < deadline:
            try:
                printed += lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, printed
        found = re.search(r"open\s+(http://localhost:\d+)/", printed)
        assert found is not None, printed
        assert "COGNITO_DOMAIN) is http://127.0.0.1:" in printed
        home = http(found.group(1) + "/")
        assert home.status == 200
        assert "href='/start'" in home.body
        # The start page calls the service and sends the browser to the hosted UI.
        start = http(found.group(1) + "/start")
        assert start.status == 302
        assert "/oauth2/authorize?identity_provider=Google" in start.location
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_no_code_state_nonce_transaction_token_or_email_is_logged(
    stub: Stub, identity_server: RunningServer
) -> None:
    email = new_email()
    started = _start(stub)
    callback = google(started.authorize_url, email)
    done = _complete(stub, callback, started.transaction)
    # A refused replay and a refused forged state are logged too (as failures).
    with pytest.raises(grpc.RpcError):
        _complete(stub, callback, started.transaction)
    with pytest.raises(grpc.RpcError):
        _complete(stub, {**callback.query(), "state": "forged-state-7788"}, started.transaction)
    authorize = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started.authorize_url).query))
    log = identity_server.log.getvalue()
    assert "federated_sign_in" in log  # the audit line is there, without the values
    secrets = {
        "code": callback.query()["code"],
        "state": authorize["state"],
        "nonce": authorize["nonce"],
        "challenge": authorize["code_challenge"],
        "transaction": started.transaction,
        "access token": done.tokens.access_token,
        "id token": done.tokens.id_token,
        "refresh token": done.tokens.refresh_token,
        "e-mail": email,
        "forged state": "forged-state-7788",
    }
    for name, value in secrets.items():
        assert value not in log, f"the {name} was logged"

"""The user pool domain's OAuth 2.0 endpoints: authorize URL, /oauth2/token, /oauth2/revoke.

Cognito federates (Google and other providers) only through the pool
domain's hosted UI, never through InitiateAuth; this module is the only one
that talks to that domain. It uses the standard library's HTTP client; a
whole request (name lookup, connection, answer) is bounded by `TIMEOUT` and by
the caller's deadline, as the gateway's calls are. It sends the app client secret by HTTP
Basic when the client has one, never follows redirects, and reads at most
`MAX_RESPONSE_BYTES` of an answer. Every answer other than success becomes a
domain error with a reason naming the OAuth error (`invalid_grant`,
`invalid_client`, ...); no token, code or secret is ever logged.

Its calls block: handlers run them through the server's offload pool, as they
do the gateway's.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from identity_server import _context
from identity_server._errors import (
    DeadlineTooShort,
    FederatedSignInFailed,
    IdentityError,
    Internal,
    RefreshTokenInvalid,
    Unavailable,
)
from identity_server._tls import is_loopback
from identity_server.cognito.gateway import MIN_TIME_FOR_CALL, ClientSecret

log = logging.getLogger("identity_server.cognito")

TIMEOUT = 4.0
MAX_RESPONSE_BYTES = 64 * 1024
# Requests in flight to the pool domain at once; one past a timeout still holds its thread.
MAX_REQUESTS = 8

# What each /oauth2/token error means for the caller. `invalid_grant` covers
# a code that is unknown, used, expired, or that does not match the redirect
# URI or the PKCE verifier it was issued for: Cognito does not tell them apart.
_TOKEN_ERRORS: Mapping[str, tuple[str, str]] = {
    "invalid_grant": (
        "FEDERATED_CODE_INVALID",
        "The authorization code is not valid: used already, expired, or issued "
        "for another redirect URI or verifier; start the sign-in again.",
    ),
    "invalid_request": (
        "FEDERATED_REQUEST_INVALID",
        "The identity provider refused the token request as malformed.",
    ),
    "unauthorized_client": (
        "FEDERATED_CLIENT_UNAUTHORIZED",
        "The app client is not allowed the authorization-code flow.",
    ),
    "unsupported_grant_type": (
        "FEDERATED_CLIENT_UNAUTHORIZED",
        "The app client is not allowed the authorization-code flow.",
    ),
    "invalid_scope": (
        "FEDERATED_SCOPE_INVALID",
        "The app client is not allowed the requested scopes.",
    ),
}


_REVOKE_REFUSALS = frozenset({"invalid_request", "unsupported_token_type", "invalid_grant"})


@dataclass(frozen=True, slots=True)
class HostedTokens:
    """What /oauth2/token answered. Never printed: repr hides the tokens."""

    access_token: str = field(repr=False)
    id_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    token_type: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect from the token endpoint is an error, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


Opener = Callable[[urllib.request.Request, float], tuple[int, bytes]]


_OPENER = urllib.request.build_opener(_NoRedirects)


def _open(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    """POST and read the answer: (HTTP status, at most MAX_RESPONSE_BYTES of body)."""
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read(MAX_RESPONSE_BYTES)


class HostedUi:
    """One app client's view of the pool domain (`https://<prefix>.auth.<region>...`)."""

    def __init__(
        self,
        domain: str,
        client_id: str,
        secret: ClientSecret | None = None,
        *,
        timeout: float = TIMEOUT,
        opener: Opener = _open,
    ) -> None:
        parts = urllib.parse.urlsplit(domain)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and is_loopback(parts.hostname or "")
        ):
            raise ValueError("the pool domain must be an https (or loopback http) URL")
        self.domain = domain.rstrip("/")
        self.client_id = client_id
        self._secret = secret
        self._timeout = timeout
        self._open = opener
        self._io = ThreadPoolExecutor(MAX_REQUESTS, thread_name_prefix="hosted-ui")

    def authorize_url(
        self,
        *,
        provider: str,
        redirect_uri: str,
        scopes: tuple[str, ...],
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        """The URL the browser goes to: straight to the provider's sign-in page."""
        query = {
            "identity_provider": provider,
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.domain}/oauth2/authorize?{urlencode(query)}"

    def logout_url(self, logout_uri: str) -> str:
        """The hosted UI's /logout: it clears its own session cookie, then goes to `logout_uri`."""
        query = urlencode({"client_id": self.client_id, "logout_uri": logout_uri})
        return f"{self.domain}/logout?{query}"

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> HostedTokens:
        """The authorization-code grant with the PKCE verifier."""
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        status, body = self._post("/oauth2/token", form)
        answer = _json(body)
        if status != 200:
            raise self._token_error(status, answer)
        access, id_token = answer.get("access_token"), answer.get("id_token")
        if (
            not isinstance(access, str)
            or not isinstance(id_token, str)
            or not access
            or not id_token
        ):
            log.error("the token endpoint answered without tokens")
            raise Internal()
        refresh = answer.get("refresh_token", "")
        expires_in = answer.get("expires_in", 0)
        return HostedTokens(
            access_token=access,
            id_token=id_token,
            refresh_token=refresh if isinstance(refresh, str) else "",
            expires_in=expires_in if isinstance(expires_in, int) else 0,
            token_type=str(answer.get("token_type", "Bearer")),
        )

    def revoke(self, refresh_token: str) -> None:
        """/oauth2/revoke: the refresh token and the tokens issued from it stop working."""
        status, body = self._post(
            "/oauth2/revoke", {"token": refresh_token, "client_id": self.client_id}
        )
        if status == 200:
            return
        error = str(_json(body).get("error", ""))
        if status == 400 and error in _REVOKE_REFUSALS:
            raise RefreshTokenInvalid()
        raise self._token_error(status, {"error": error})

    # -- plumbing --------------------------------------------------------

    def _post(self, path: str, form: dict[str, str]) -> tuple[int, bytes]:
        """POST a form; once more after a secret rotation when the client is refused."""
        status, body = self._post_once(path, form)
        if (
            status in (400, 401)
            and _json(body).get("error") == "invalid_client"
            and self._secret is not None
            and self._secret.reload()
        ):
            status, body = self._post_once(path, form)
        return status, body

    def _post_once(self, path: str, form: dict[str, str]) -> tuple[int, bytes]:
        remaining = _context.time_remaining()
        if remaining is not None and remaining < MIN_TIME_FOR_CALL:
            raise DeadlineTooShort()
        # The socket timeout bounds each read, not the request: the wait on the
        # future bounds the whole of it (a slow drip of bytes, a slow lookup).
        timeout, caller_bound = self._timeout, False
        if remaining is not None and remaining - MIN_TIME_FOR_CALL / 2 < timeout:
            timeout, caller_bound = remaining - MIN_TIME_FOR_CALL / 2, True
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._secret is not None:
            pair = f"{self.client_id}:{self._secret.value}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        request = urllib.request.Request(  # noqa: S310 - https (http on loopback), checked
            self.domain + path, data=urlencode(form).encode(), headers=headers, method="POST"
        )
        try:
            return self._io.submit(self._open, request, timeout).result(timeout=timeout)
        except FutureTimeout:
            log.warning("hosted UI call outlived its time", extra={"operation": path})
            raise DeadlineTooShort() if caller_bound else Unavailable() from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            log.warning(
                "hosted UI unreachable", extra={"operation": path, "error": type(exc).__name__}
            )
            raise Unavailable() from None

    def _token_error(self, status: int, answer: Mapping[str, Any]) -> IdentityError:
        error = str(answer.get("error", ""))[:64]
        if error == "invalid_client":
            # Our configuration (client id or secret), not the caller, is wrong.
            log.error("the hosted UI refused the app client", extra={"error": error})
            return Internal(
                "The identity service's app client was refused by the hosted UI.",
                reason="FEDERATED_CLIENT_INVALID",
            )
        known = _TOKEN_ERRORS.get(error)
        if known is not None and 400 <= status < 500:
            return FederatedSignInFailed(known[1], reason=known[0])
        if status >= 500 or status == 429:
            return Unavailable()
        log.error("unexpected hosted UI answer", extra={"status": status, "error": error})
        return Internal()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

"""The local stand-in of the user pool domain: Cognito's hosted UI with Google, on loopback.

A Flask app (the web framework moto's server already brings) served by
werkzeug on 127.0.0.1, with the endpoints the service and a browser use:

- `GET /oauth2/authorize` with `identity_provider=Google`: checks the client,
  the redirect URI (exactly one of the client's CallbackURLs), `response_type
  =code`, the scopes and PKCE (S256 only), then shows a small local page that
  plays Google (type an e-mail and a name, continue; nothing leaves the
  machine). Continuing signs the user in as Cognito does and redirects to the
  callback with `code` and `state`; cancelling redirects with
  `error=access_denied`; errors after the redirect URI is known are
  redirected as Cognito does, errors before it are a page.
- `POST /oauth2/token`: client authentication (HTTP Basic or form), the
  authorization-code grant with PKCE S256 (codes single-use, 5 minutes, bound
  to the client, redirect URI and challenge) and the refresh-token grant;
  Cognito's answers `invalid_client`, `invalid_grant`,
  `unsupported_grant_type` (and `invalid_request` from /oauth2/revoke).
- `POST /oauth2/revoke`, `GET /oauth2/userInfo`, `GET /logout`,
  `GET /.well-known/openid-configuration`.

Federated users are made as Cognito makes them: username `Google_<id>`
(status EXTERNAL_PROVIDER), the `identities` attribute and claim, the group
`<pool id>_Google`, Google's `email_verified` mapped; PreSignUp runs with
`PreSignUp_ExternalProvider` (and PostConfirmation after the first sign-in),
and AdminLinkProviderForUser links an identity to an existing user, after
which, as in Cognito, that first sign-in fails with "Already found an entry
for username Google_..." and the next one signs in as the linked user. Tokens
are signed with the local stack's per-run key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import importlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, request
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from identity_server.local import layer as local_layer
from identity_server.local.layer import PoolLayer
from identity_server.local.triggers import TriggerFailed
from identity_server.local.triggers import event as trigger_event
from identity_server.local.web import LoopbackServer

PROVIDER = "Google"
CODE_LIFETIME = 300
PENDING_LIFETIME = 900
TOKEN_LIFETIME = 3600
EXTERNAL_PROVIDER = "EXTERNAL_PROVIDER"
_MAX_FIELD = 2048


def google_id(email: str) -> str:
    """The stand-in Google account id of an e-mail: 21 digits, the same for the same address."""
    digest = hashlib.sha256(email.strip().casefold().encode()).digest()
    return str(int.from_bytes(digest[:9], "big") % 10**21).zfill(21)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _Authorization:
    """An /oauth2/authorize request waiting on the Google page."""

    client_id: str
    redirect_uri: str
    state: str
    nonce: str
    scopes: tuple[str, ...]
    challenge: str
    expires_at: float


@dataclass
class _Code:
    """An issued authorization code."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    scopes: tuple[str, ...]
    username: str
    expires_at: float
    auth_time: int
    used: bool = False


@dataclass
class _State:
    """Everything the stand-in remembers (codes live 5 minutes, pending pages 15)."""

    pending: dict[str, _Authorization] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    # (pool id, provider, provider user id) -> the username it is linked to
    links: dict[tuple[str, str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def _models() -> Any:
    return importlib.import_module("moto.cognitoidp.models")


def _pool(pool_id: str) -> Any:
    for account in _models().cognitoidp_backends.values():
        for region, backend in account.items():
            if region != "global" and pool_id in backend.user_pools:
                return backend.user_pools[pool_id]
    raise LookupError(f"no user pool {pool_id}")


def _identity(user_id: str, created: int) -> dict[str, Any]:
    return {
        "userId": user_id,
        "providerName": PROVIDER,
        "providerType": PROVIDER,
        "issuer": None,
        "primary": "true",
        "dateCreated": str(created * 1000),
    }


def _is_external(user: Any) -> bool:
    return str(getattr(user.status, "value", user.status)) == EXTERNAL_PROVIDER


# --- moto: AdminLinkProviderForUser, and federated users found as Cognito finds them


_installed = False


def install() -> None:
    """Teach moto AdminLinkProviderForUser and EXTERNAL_PROVIDER users (once per process)."""
    global _installed
    if _installed:
        return
    models: Any = _models()
    responses: Any = importlib.import_module("moto.cognitoidp.responses")
    action_result: Any = importlib.import_module("moto.core.responses").ActionResult

    def admin_link_provider_for_user(self: Any) -> Any:
        pool_id = self._get_param("UserPoolId")
        destination = self._get_param("DestinationUser") or {}
        source = self._get_param("SourceUser") or {}
        backend = self.backend
        pool = backend.describe_user_pool(pool_id)
        if destination.get("ProviderName") != "Cognito":
            raise local_layer._error(
                "InvalidParameterException", "DestinationUser must be a Cognito user."
            )
        if source.get("ProviderAttributeName") != "Cognito_Subject":
            raise local_layer._error(
                "InvalidParameterException", "Only Cognito_Subject links are supported locally."
            )
        provider = str(source.get("ProviderName", ""))
        subject = str(source.get("ProviderAttributeValue", ""))
        user = pool._get_user(str(destination.get("ProviderAttributeValue", "")))
        if user is None or _is_external(user):
            raise local_layer._error("UserNotFoundException", "User does not exist.")
        if f"{provider}_{subject}".casefold() in {name.casefold() for name in pool.users}:
            raise local_layer._error(
                "InvalidParameterException",
                "Merging is not currently supported, provider attribute already exists.",
            )
        key = (pool.id, provider, subject)
        with _state.lock:
            linked = _state.links.get(key)
            if linked is not None and linked != user.username:
                raise local_layer._error(
                    "InvalidParameterException", "The source user is linked to another user."
                )
            _state.links[key] = user.username
        identities = json.loads(user.attribute_lookup.get("identities", "[]"))
        if not any(i.get("userId") == subject for i in identities):
            identities.append({**_identity(subject, int(time.time())), "primary": "false"})
            user.update_attributes([{"Name": "identities", "Value": json.dumps(identities)}])
        return action_result({})

    original_get_user = models.CognitoIdpUserPool._get_user

    def get_user(self: Any, username: str) -> Any:
        # A federated user's e-mail is an attribute, never a sign-in alias.
        found = original_get_user(self, username)
        if found is None or not _is_external(found) or found.username == username:
            return found
        wanted = username.casefold()
        for user in self.users.values():
            if not _is_external(user) and (
                user.username.casefold() == wanted
                or str(user.attribute_lookup.get("email", "")).casefold() == wanted
            ):
                return user
        return None

    get_user.__wrapped_by_layer__ = getattr(  # type: ignore[attr-defined]
        original_get_user, "__wrapped_by_layer__", original_get_user
    )

    def backend_get_user(self: Any, access_token: str) -> Any:
        # GetUser accepts a federated user's access token (moto: CONFIRMED only).
        for pool in self.user_pools.values():
            if access_token in pool.access_tokens:
                _, username = pool.access_tokens[access_token]
                user = pool._get_user(username)
                if user is not None and user.enabled and _is_external(user):
                    return user
        return original_backend_get_user(self, access_token)

    original_backend_get_user = models.CognitoIdpBackend.get_user
    responses.CognitoIdpResponse.admin_link_provider_for_user = admin_link_provider_for_user
    models.CognitoIdpUserPool._get_user = get_user
    models.CognitoIdpBackend.get_user = backend_get_user
    _installed = True


# --- the app ------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in with Google (local)</title>
<style>body{{font-family:sans-serif;max-width:28em;margin:3em auto}}
label{{display:block;margin:.8em 0}}input[type=text],input[type=email]{{width:100%}}</style>
</head><body>
<h1>Sign in with Google</h1>
<p><strong>Local stand-in:</strong> no Google account is used and nothing leaves
this machine. Type the e-mail and name that Google would tell Cognito.</p>
<form method="post" action="/oauth2/google">
<input type="hidden" name="request_id" value="{request_id}">
<label>E-mail <input type="email" id="email" name="email" required maxlength="254"></label>
<label>Name <input type="text" id="name" name="name" maxlength="128"></label>
<label><input type="checkbox" id="email_verified" name="email_verified" value="true" checked>
Google says this e-mail is verified</label>
<button type="submit" id="continue" name="action" value="continue">Continue</button>
<button type="submit" id="cancel" name="action" value="cancel" formnovalidate>Cancel</button>
</form></body></html>
"""


def _page(status: int, title: str, text: str) -> Response:
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        "</body></html>"
    )
    return Response(body, status=status, mimetype="text/html")


def _oauth_error(error: str, status: int = 400, description: str = "") -> Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _to_callback(redirect_uri: str, **params: str) -> Response:
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + separator + urlencode(params), code=302)


class LocalHostedUi:
    """The pool domain of one local user pool, on 127.0.0.1."""

    def __init__(self, pool_layer: PoolLayer, *, port: int = 0) -> None:
        self.layer = pool_layer
        self.pool_id = ""
        self._clock = pool_layer.clock.now  # code lifetimes; token times are wall time
        self.app = self._build()
        self._web = LoopbackServer(self.app, port, "local-hosted-ui")
        self.port = self._web.port
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, pool_id: str) -> LocalHostedUi:
        """Serve the pool's domain (the port was bound when made)."""
        install()
        self.pool_id = pool_id
        self._web.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._web.stop()

    @property
    def issuer(self) -> str:
        pool = _pool(self.pool_id)
        return f"https://cognito-idp.{pool.region}.amazonaws.com/{pool.id}"

    # -- routes ------------------------------------------------------------

    def _build(self) -> Flask:
        app = Flask("identity_server.local.hosted_ui")
        app.add_url_rule("/oauth2/authorize", view_func=self.authorize, methods=["GET"])
        app.add_url_rule("/oauth2/google", view_func=self.google, methods=["POST"])
        app.add_url_rule("/oauth2/token", view_func=self.token, methods=["POST"])
        app.add_url_rule("/oauth2/revoke", view_func=self.revoke, methods=["POST"])
        app.add_url_rule("/oauth2/userInfo", view_func=self.user_info, methods=["GET", "POST"])
        app.add_url_rule("/logout", view_func=self.logout, methods=["GET"])
        app.add_url_rule(
            "/.well-known/openid-configuration", view_func=self.discovery, methods=["GET"]
        )
        return app

    def _client(self, client_id: str) -> Any:
        return _pool(self.pool_id).clients.get(client_id)

    def authorize(self) -> Response:
        args = request.args
        client = self._client(args.get("client_id", ""))
        if client is None:
            return _page(400, "invalid_request", "The client_id is not a client of this pool.")
        redirect_uri = args.get("redirect_uri", "")
        if redirect_uri not in (client.extended_config.get("CallbackURLs") or []):
            return _page(400, "redirect_mismatch", "The redirect_uri is not a callback URL.")
        state = args.get("state", "")
        if any(len(value) > _MAX_FIELD for value in args.values()):
            return _to_callback(redirect_uri, error="invalid_request", state=state)
        if args.get("response_type") != "code" or "code" not in (
            client.extended_config.get("AllowedOAuthFlows") or []
        ):
            return _to_callback(redirect_uri, error="unsupported_response_type", state=state)
        scopes = tuple(args.get("scope", "").split())
        allowed = set(client.extended_config.get("AllowedOAuthScopes") or [])
        if not scopes or not set(scopes) <= allowed:
            return _to_callback(redirect_uri, error="invalid_scope", state=state)
        challenge = args.get("code_challenge", "")
        if args.get("code_challenge_method") != "S256" or len(challenge) != 43:
            return _to_callback(
                redirect_uri,
                error="invalid_request",
                error_description="PKCE with code_challenge_method S256 is required",
                state=state,
            )
        supported = client.extended_config.get("SupportedIdentityProviders") or []
        if args.get("identity_provider") != PROVIDER or PROVIDER not in supported:
            return _to_callback(
                redirect_uri,
                error="invalid_request",
                error_description="the local hosted UI serves identity_provider=Google only",
                state=state,
            )
        request_id = secrets.token_urlsafe(24)
        with _state.lock:
            now = self._clock()
            for key in [k for k, v in _state.pending.items() if v.expires_at <= now]:
                del _state.pending[key]
            _state.pending[request_id] = _Authorization(
                client_id=client.id,
                redirect_uri=redirect_uri,
                state=state,
                nonce=args.get("nonce", ""),
                scopes=scopes,
                challenge=challenge,
                expires_at=now + PENDING_LIFETIME,
            )
        return Response(_PAGE.format(request_id=html.escape(request_id)), mimetype="text/html")

    def google(self) -> Response:
        form = request.form
        with _state.lock:
            pending = _state.pending.pop(form.get("request_id", ""), None)
        if pending is None or pending.expires_at <= self._clock():
            return _page(400, "invalid_request", "This sign-in page has expired; start again.")
        if form.get("action") == "cancel":
            return _to_callback(
                pending.redirect_uri,
                error="access_denied",
                error_description="The user cancelled the sign-in",
                state=pending.state,
            )
        email = form.get("email", "").strip()
        local, at, domain = email.rpartition("@")
        if not (at and local and "." in domain) or len(email) > 254:
            return _page(400, "invalid_request", "Type an e-mail address.")
        name = form.get("name", "").strip()[:128] or local
        verified = form.get("email_verified") == "true"
        try:
            username = self._sign_in(pending.client_id, email, name, verified)
        except _Refused as refused:
            return _to_callback(
                pending.redirect_uri,
                error="invalid_request",
                error_description=refused.description,
                state=pending.state,
            )
        code = secrets.token_urlsafe(32)
        with _state.lock:
            now = self._clock()
            for key in [k for k, v in _state.codes.items() if v.expires_at <= now]:
                del _state.codes[key]
            _state.codes[code] = _Code(
                client_id=pending.client_id,
                redirect_uri=pending.redirect_uri,
                challenge=pending.challenge,
                nonce=pending.nonce,
                scopes=pending.scopes,
                username=username,
                expires_at=now + CODE_LIFETIME,
                auth_time=int(time.time()),
            )
        answer = _to_callback(pending.redirect_uri, code=code, state=pending.state)
        answer.set_cookie("cognito", secrets.token_urlsafe(16), httponly=True, samesite="Lax")
        return answer

    def token(self) -> Response:
        client, failure = self._authenticate()
        if failure is not None:
            return failure
        grant = request.form.get("grant_type", "")
        if grant == "authorization_code":
            return self._code_grant(client)
        if grant == "refresh_token":
            return self._refresh_grant(client)
        return _oauth_error("unsupported_grant_type")

    def revoke(self) -> Response:
        client, failure = self._authenticate()
        if failure is not None:
            return failure
        token = request.form.get("token", "")
        if not token:
            return _oauth_error("invalid_request")
        pool = _pool(self.pool_id)
        entry = pool.refresh_tokens.get(token)
        if entry is not None and entry[0] != client.id:
            return _oauth_error("unauthorized_client")
        revoke_refresh_token(pool, client.id, token)
        return Response("", status=200)

    def user_info(self) -> Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        pool = _pool(self.pool_id)
        entry = pool.access_tokens.get(token)
        if not header.startswith("Bearer ") or entry is None:
            return _oauth_error("invalid_token", 401, "Access token is not valid")
        user = pool._get_user(entry[1])
        if user is None:
            return _oauth_error("invalid_token", 401, "Access token is not valid")
        info = {"sub": user.id, "username": user.username}
        for name in ("email", "email_verified", "name", "identities"):
            if name in user.attribute_lookup:
                info[name] = user.attribute_lookup[name]
        return Response(json.dumps(info), mimetype="application/json")

    def logout(self) -> Response:
        client = self._client(request.args.get("client_id", ""))
        if client is None:
            return _page(400, "invalid_request", "The client_id is not a client of this pool.")
        target = request.args.get("logout_uri", "")
        if target not in (client.extended_config.get("LogoutURLs") or []):
            return _page(400, "invalid_request", "The logout_uri is not a sign-out URL.")
        answer = redirect(target, code=302)
        answer.delete_cookie("cognito")
        return answer

    def discovery(self) -> Response:
        base = self.url
        issuer = self.issuer
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "userinfo_endpoint": f"{base}/oauth2/userInfo",
            "end_session_endpoint": f"{base}/logout",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        return Response(json.dumps(document), mimetype="application/json")

    # -- the grants ----------------------------------------------------------

    def _authenticate(self) -> tuple[Any, Response | None]:
        """The client from HTTP Basic or the form; `invalid_client` otherwise."""
        form = request.form
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        authorization = request.authorization
        if authorization is not None and authorization.type == "basic":
            client_id = authorization.username or ""
            secret = authorization.password or ""
        client = self._client(client_id)
        if client is None:
            return None, _oauth_error("invalid_client")
        if client.generate_secret and not hmac.compare_digest(
            secret.encode(), str(client.secret).encode()
        ):
            return None, _oauth_error("invalid_client")
        return client, None

    def _code_grant(self, client: Any) -> Response:
        form = request.form
        with _state.lock:
            code = _state.codes.get(form.get("code", ""))
            replayed = code is not None and code.used
            if code is not None:
                code.used = True  # single use: any presentation consumes it
        if code is None or replayed or code.expires_at <= self._clock():
            return _oauth_error("invalid_grant")
        if code.client_id != client.id or code.redirect_uri != form.get("redirect_uri"):
            return _oauth_error("invalid_grant")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(
            _s256(verifier), code.challenge
        ):
            return _oauth_error("invalid_grant")
        tokens = self._issue(client.id, code.username, code.scopes, code.nonce, code.auth_time)
        return Response(json.dumps(tokens), mimetype="application/json")

    def _refresh_grant(self, client: Any) -> Response:
        pool = _pool(self.pool_id)
        entry = pool.refresh_tokens.get(request.form.get("refresh_token", ""))
        if entry is None or entry[0] != client.id:
            return _oauth_error("invalid_grant", description="Refresh Token has been revoked")
        _, username, origin = entry
        tokens = self._issue(
            client.id, username, ("openid", "email", "profile"), "", int(time.time()), origin
        )
        del tokens["refresh_token"]
        return Response(json.dumps(tokens), mimetype="application/json")

    # -- users and tokens ------------------------------------------------------

    def _sign_in(self, client_id: str, email: str, name: str, verified: bool) -> str:
        """The Cognito username the Google identity signs in as (made on first sign-in)."""
        pool = _pool(self.pool_id)
        subject = google_id(email)
        username = f"{PROVIDER}_{subject}"
        with _state.lock:
            linked = _state.links.get((pool.id, PROVIDER, subject))
        if linked is not None and pool.users.get(linked) is not None:
            return str(linked)
        existing = pool.users.get(username)
        if existing is not None:
            existing.update_attributes(self._attributes(email, name, verified))
            return username
        attributes = self._attributes(email, name, verified)
        try:
            self._trigger(
                client_id,
                "PreSignUp_ExternalProvider",
                username,
                {"userAttributes": {a["Name"]: a["Value"] for a in attributes}},
                {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False},
            )
        except TriggerFailed as failed:
            raise _Refused(failed.message) from None
        with _state.lock:
            linked = _state.links.get((pool.id, PROVIDER, subject))
        if linked is not None:
            # Cognito's answer to the sign-in during which the trigger linked.
            raise _Refused(f"Already found an entry for username {username}")
        user = _models().CognitoIdpUser(pool.id, username, None, EXTERNAL_PROVIDER, attributes)
        identities = [_identity(subject, int(time.time()))]
        user.update_attributes([{"Name": "identities", "Value": json.dumps(identities)}])
        pool.users[username] = user
        group_name = f"{pool.id}_{PROVIDER}"
        group = pool.groups.get(group_name)
        if group is None:
            group = _models().CognitoIdpGroup(pool.id, group_name, "Autogenerated group", None, 0)
            pool.groups[group_name] = group
        group.users.add(user)
        user.groups.add(group)
        try:
            self._trigger(
                client_id,
                "PostConfirmation_ConfirmSignUp",
                username,
                {"userAttributes": {"sub": user.id, **user.attribute_lookup}},
                {},
            )
        except TriggerFailed as failed:
            raise _Refused(failed.message) from None
        return username

    @staticmethod
    def _attributes(email: str, name: str, verified: bool) -> list[dict[str, str]]:
        return [
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true" if verified else "false"},
            {"Name": "name", "Value": name},
        ]

    def _trigger(
        self,
        client_id: str,
        source: str,
        user_name: str,
        request_part: dict[str, Any],
        response_part: dict[str, Any],
    ) -> None:
        pool = _pool(self.pool_id)
        event = trigger_event(
            source=source,
            region=pool.region,
            pool_id=pool.id,
            client_id=client_id,
            user_name=user_name,
            request=request_part,
            response=response_part,
        )
        self.layer.triggers.invoke(pool.extended_config.get("LambdaConfig") or {}, event)

    def _issue(
        self,
        client_id: str,
        username: str,
        scopes: tuple[str, ...],
        nonce: str,
        auth_time: int,
        origin_jti: str = "",
    ) -> dict[str, Any]:
        """Access, id and refresh tokens as the hosted UI issues them, signed with the run's key."""
        pool = _pool(self.pool_id)
        user = pool.users[username]
        # Token times are wall time, as moto's own tokens and every verifier read
        # them; the controllable clock rules code lifetimes only.
        now = int(time.time())
        refresh = ""
        if not origin_jti:
            refresh, origin_jti = pool.create_refresh_token(client_id, username)
        groups = sorted(group.group_name for group in user.groups)
        common: dict[str, Any] = {
            "sub": user.id,
            "iss": f"https://cognito-idp.{pool.region}.amazonaws.com/{pool.id}",
            "origin_jti": origin_jti,
            "auth_time": auth_time,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        if groups:
            common["cognito:groups"] = groups
        access_claims = {
            **common,
            "version": 2,
            "client_id": client_id,
            "token_use": "access",
            "scope": " ".join(scopes),
            "jti": str(uuid.uuid4()),
            "username": username,
        }
        attributes = user.attribute_lookup
        id_claims: dict[str, Any] = {
            **common,
            "aud": client_id,
            "token_use": "id",
            "jti": str(uuid.uuid4()),
            "cognito:username": username,
            "email": attributes.get("email", ""),
            "email_verified": attributes.get("email_verified", "false") == "true",
        }
        if "name" in attributes:
            id_claims["name"] = attributes["name"]
        if "identities" in attributes:
            id_claims["identities"] = json.loads(attributes["identities"])
        if nonce:
            id_claims["nonce"] = nonce
        signing_key = self.layer.signing_key
        access = signing_key.sign(access_claims)
        id_token = signing_key.sign(id_claims)
        pool.access_tokens[access] = (client_id, username)
        pool.id_tokens[id_token] = (client_id, username)
        return {
            "access_token": access,
            "id_token": id_token,
            "refresh_token": refresh,
            "expires_in": TOKEN_LIFETIME,
            "token_type": "Bearer",
        }


class _Refused(Exception):
    """The sign-in failed as Cognito says it: redirected with this error_description."""

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(description)


def revoke_refresh_token(pool: Any, client_id: str, token: str) -> None:
    """As Cognito revokes: the refresh token, and the access tokens issued from it."""
    entry = pool.refresh_tokens.get(token)
    if token not in pool.refresh_tokens:
        return
    pool.refresh_tokens[token] = None
    if entry is None:
        return
    origin = entry[2]  # unique to one sign-in: it names the session, whatever the user's name
    for access, (owner, _) in list(pool.access_tokens.items()):
        if owner == client_id and _origin(access) == origin:
            del pool.access_tokens[access]


def _origin(token: str) -> str:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return ""
    origin = claims.get("origin_jti", "") if isinstance(claims, Mapping) else ""
    return origin if isinstance(origin, str) else ""

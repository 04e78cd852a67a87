"""A minimal backend-for-frontend (BFF) for `make run`: Google sign-in in a browser.

It does what a real BFF does, on 127.0.0.1: `/start` calls StartFederatedSignIn,
keeps the sealed transaction in an httpOnly, Secure, SameSite=Lax cookie
scoped to `/callback`, and redirects the browser to the hosted UI;
`/callback` hands the callback's parameters and the cookie to
CompleteFederatedSignIn (restarting when the answer is ABORTED
FEDERATED_ACCOUNT_LINKED), verifies the id token with VerifyToken and shows
who signed in. The tokens stay on this side: the browser gets only an opaque
session cookie. `/sign-out` revokes through SignOut (with a logout URI) and
sends the browser to the hosted UI's /logout.
"""

from __future__ import annotations

import html
import secrets
import threading
from typing import Any

import grpc
from flask import Flask, request
from google.rpc import error_details_pb2, status_pb2
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server.local.web import LoopbackServer

TRANSACTION_COOKIE = "federated_tx"
SESSION_COOKIE = "sid"


def _reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call ('' when there is none)."""
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


def _page(title: str, body: str, status: int = 200) -> Response:
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(text, status=status, mimetype="text/html")


class DemoBff:
    """The BFF's pages on 127.0.0.1; `target` is the identity server to call."""

    def __init__(self, port: int = 0) -> None:
        self.target = ""
        self._sessions: dict[str, pb.AuthTokens] = {}
        self._lock = threading.Lock()
        self.app = Flask("identity_server.local.demo")
        self.app.add_url_rule("/", view_func=self.home)
        self.app.add_url_rule("/start", view_func=self.begin)
        self.app.add_url_rule("/callback", view_func=self.callback)
        self.app.add_url_rule("/sign-out", view_func=self.sign_out, methods=["POST"])
        self.app.add_url_rule("/signed-out", view_func=self.signed_out)
        self._web = LoopbackServer(self.app, port, "local-demo-bff")
        self.port = self._web.port
        self.url = f"http://localhost:{self.port}"
        self.callback_url = f"{self.url}/callback"
        self.signed_out_url = f"{self.url}/signed-out"

    def start(self) -> DemoBff:
        """Serve in a thread."""
        self._web.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._web.stop()

    def _call(self, method: str, message: Any, access_token: str = "") -> Any:
        metadata = (("authorization", f"Bearer {access_token}"),) if access_token else None
        with grpc.insecure_channel(self.target) as channel:
            stub: Any = pb_grpc.IdentityServiceStub(channel)
            return getattr(stub, method)(message, timeout=10, metadata=metadata)

    # -- pages ---------------------------------------------------------------

    def home(self) -> Response:
        return _page(
            "Local BFF",
            "<p><a id='sign-in' href='/start'>Sign in with Google</a> "
            "(the local hosted UI plays Google; nothing leaves this machine).</p>",
        )

    def begin(self) -> Response:
        answer = self._call(
            "StartFederatedSignIn",
            pb.StartFederatedSignInRequest(
                redirect_uri=self.callback_url, provider=pb.FEDERATED_PROVIDER_GOOGLE
            ),
        )
        response = redirect(answer.authorize_url, code=302)
        response.set_cookie(
            TRANSACTION_COOKIE,
            answer.transaction,
            max_age=answer.expires_in,
            path="/callback",
            httponly=True,
            secure=True,
            samesite="Lax",
        )
        return response

    def callback(self) -> Response:
        args = request.args
        transaction = request.cookies.get(TRANSACTION_COOKIE, "")
        if not transaction:
            # Nothing was started from this browser (or it took too long): a
            # BFF never completes a sign-in it did not start.
            return _page(
                "No sign-in in progress",
                "<p id='reason'>NO_TRANSACTION</p><p><a href='/start'>Start one</a></p>",
                status=400,
            )
        try:
            done = self._call(
                "CompleteFederatedSignIn",
                pb.CompleteFederatedSignInRequest(
                    code=args.get("code", ""),
                    state=args.get("state", ""),
                    transaction=transaction,
                    error=args.get("error", ""),
                    error_description=args.get("error_description", ""),
                ),
            )
            verified = self._call(
                "VerifyToken",
                pb.VerifyTokenRequest(token=done.tokens.id_token, token_use=pb.TOKEN_USE_ID),
            )
        except grpc.RpcError as error:
            reason = _reason(error)
            if reason == "FEDERATED_ACCOUNT_LINKED":
                # The identity was just linked to an existing account: go again.
                return redirect("/start", code=302)
            page = _page(
                "Sign-in failed",
                f"<p id='reason'>{html.escape(reason or str(error.code()))}</p>"
                "<p><a href='/start'>Start again</a></p>",
                status=401,
            )
            page.delete_cookie(TRANSACTION_COOKIE, path="/callback")
            return page
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session] = done.tokens
        principal = verified.principal
        claims = verified.claims.fields
        providers = (
            [
                str(i.struct_value.fields["providerName"].string_value)
                for i in claims["identities"].list_value.values
            ]
            if "identities" in claims
            else []
        )
        rows = {
            "sub": principal.sub,
            "username": principal.username,
            "email": principal.email,
            "groups": " ".join(principal.groups),
            "provider": ", ".join(providers) or "(none)",
        }
        table = "".join(
            f"<tr><th>{name}</th><td id='{name}'>{html.escape(value)}</td></tr>"
            for name, value in rows.items()
        )
        page = _page(
            "Signed in",
            f"<table>{table}</table>"
            "<form method='post' action='/sign-out'><button id='sign-out'>Sign out</button></form>",
        )
        page.delete_cookie(TRANSACTION_COOKIE, path="/callback")
        page.set_cookie(SESSION_COOKIE, session, httponly=True, secure=True, samesite="Lax")
        return page

    def sign_out(self) -> Response:
        with self._lock:
            tokens = self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        if tokens is None:
            return redirect("/", code=303)
        answer = self._call(
            "SignOut",
            pb.SignOutRequest(refresh_token=tokens.refresh_token, logout_uri=self.signed_out_url),
            access_token=tokens.access_token,
        )
        response = redirect(answer.logout_url, code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def signed_out(self) -> Response:
        return _page("Signed out", "<p><a href='/'>Home</a></p>")

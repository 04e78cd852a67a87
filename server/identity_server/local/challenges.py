"""Sign-in challenges in the local Cognito, as Cognito runs them where moto does not.

- A challenge's session lasts 3 minutes (`SESSION_LIFETIME`) on its pool's
  clock, the one codes, lockout and TOTP read (`LocalCognito.clock`, which
  tests move); moto's sessions never expire.
- An unknown or expired session is NotAuthorizedException "Invalid session for
  the user, session is expired." (moto: ResourceNotFoundException, which means
  a missing app client), and so is a session answered under another user's name.
- SECRET_HASH is checked on every challenge response (moto: MFA codes only),
  and a password sign-in's challenge names the user's Cognito username in
  `USER_ID_FOR_SRP`, as Cognito's does (moto: only for NEW_PASSWORD_REQUIRED,
  as `USERNAME`).
- VerifySoftwareToken with an access token also accepts a current code of the
  user's active authenticator when no new one is pending verification (Cognito
  re-verifies the associated secret; DisableTotp's step-up relies on it).
- A pool with MfaConfiguration ON answers a password sign-in of a user without
  MFA with the MFA_SETUP challenge (moto: only after SRP), and MFA_SETUP is
  answered only with the session that VerifySoftwareToken returned (moto signs
  in with any session).

`install()` wraps moto's backend methods once, as `_patch_moto` does; the user
store stays moto's.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from identity_server.local.layer import layer_for

SESSION_LIFETIME = 180.0
EXPIRED = "Invalid session for the user, session is expired."
NOT_THIS_USER = "Invalid session for the user."
# Cognito's ChallengeParameters are strings; this one is a JSON list.
MFAS_CAN_SETUP = '["SOFTWARE_TOKEN_MFA"]'


def _clock_of(value: Any) -> Callable[[], float]:
    """The clock of the pool a session belongs to (moto stores (username, pool))."""
    try:
        pool = value[1]
    except (TypeError, IndexError):
        return time.time
    return layer_for(pool).clock.now if hasattr(pool, "id") else time.time


class ExpiringSessions(dict[str, Any]):
    """moto's session table (session -> (username, pool)), whose entries lapse."""

    def __init__(self, existing: dict[str, Any] | None = None) -> None:
        super().__init__()
        # When each session was made, and the clock it is judged by.
        self._born: dict[str, tuple[Callable[[], float], float]] = {}
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        for key, value in (existing or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)
            clock = _clock_of(value)
            self._born[key] = (clock, clock())

    def _live(self, key: object) -> bool:
        with self._lock:
            if not isinstance(key, str) or not super().__contains__(key):
                return False
            clock, born = self._born.get(key, (time.time, 0.0))
            if clock() - born <= SESSION_LIFETIME:
                return True
            super().pop(key, None)
            self._born.pop(key, None)
            self._verified.discard(key)
            return False

    def __contains__(self, key: object) -> bool:
        return self._live(key)

    def __getitem__(self, key: str) -> Any:
        if not self._live(key):
            raise KeyError(key)
        return super().__getitem__(key)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            super().__delitem__(key)
            self._born.pop(key, None)
            self._verified.discard(key)

    def pop(self, key: str, *default: Any) -> Any:
        """Remove a session with its bookkeeping (moto and the layer pop them)."""
        with self._lock:
            self._born.pop(key, None)
            self._verified.discard(key)
            return super().pop(key, *default)

    def mark_verified(self, key: str) -> None:
        """This session came from VerifySoftwareToken: it may finish MFA_SETUP."""
        with self._lock:
            self._verified.add(key)

    def verified(self, key: str) -> bool:
        """Whether the session may answer MFA_SETUP."""
        with self._lock:
            return key in self._verified


def _sessions(backend: Any) -> ExpiringSessions:
    """The backend's session table, made expiring on first use."""
    if not isinstance(backend.sessions, ExpiringSessions):
        backend.sessions = ExpiringSessions(dict(backend.sessions))
    sessions: ExpiringSessions = backend.sessions
    return sessions


_installed = False


def install() -> None:
    """Wrap moto's Cognito backend (once per process)."""
    global _installed
    if _installed:
        return
    models: Any = importlib.import_module("moto.cognitoidp.models")
    utils: Any = importlib.import_module("moto.cognitoidp.utils")
    backend_class = models.CognitoIdpBackend

    original_initiate = backend_class.initiate_auth

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> Any:
        sessions = _sessions(self)
        result = original_initiate(self, client_id, auth_flow, auth_parameters)
        if str(getattr(auth_flow, "value", auth_flow)) != "USER_PASSWORD_AUTH":
            return result
        username = auth_parameters.get("USERNAME", "")
        for pool in self.user_pools.values():
            if client_id not in pool.clients:
                continue
            user = pool._get_user(username)
            if user is None:
                continue
            if "ChallengeName" in result:
                parameters = dict(result.get("ChallengeParameters") or {})
                parameters["USER_ID_FOR_SRP"] = user.username
                return {**result, "ChallengeParameters": parameters}
            if pool.mfa_config == "ON" and not _has_mfa(user):
                session = str(uuid.uuid4())
                sessions[session] = (username, pool)
                return {
                    "ChallengeName": "MFA_SETUP",
                    "ChallengeParameters": {
                        "MFAS_CAN_SETUP": MFAS_CAN_SETUP,
                        "USER_ID_FOR_SRP": user.username,
                    },
                    "Session": session,
                }
        return result

    original_respond = backend_class.respond_to_auth_challenge

    def respond_to_auth_challenge(
        self: Any,
        session: str,
        client_id: str,
        challenge_name: str,
        challenge_responses: dict[str, str],
    ) -> Any:
        sessions = _sessions(self)
        if challenge_name != "PASSWORD_VERIFIER":
            if session not in sessions:
                raise models.NotAuthorizedError(EXPIRED)
            owner, pool = sessions[session]
            client = pool.clients.get(client_id)
            if client is None:
                raise models.ResourceNotFoundError(client_id)
            username = challenge_responses.get("USERNAME", "")
            if client.generate_secret and not utils.check_secret_hash(
                client.secret, client.id, username, challenge_responses.get("SECRET_HASH")
            ):
                raise models.NotAuthorizedError(
                    f"Unable to verify secret hash for client {client_id}"
                )
            expected, given = pool._get_user(owner), pool._get_user(username)
            if expected is None or given is None or expected.username != given.username:
                raise models.NotAuthorizedError(NOT_THIS_USER)
            if challenge_name == "MFA_SETUP" and not sessions.verified(session):
                raise models.NotAuthorizedError(NOT_THIS_USER)
        result = original_respond(self, session, client_id, challenge_name, challenge_responses)
        if challenge_name == "MFA_SETUP" and session in sessions:
            del sessions[session]  # one use: moto would sign in with it again
        return result

    original_associate = backend_class.associate_software_token

    def associate_software_token(self: Any, access_token: str, session: str) -> Any:
        if session and session not in _sessions(self):
            raise models.NotAuthorizedError(EXPIRED)
        return original_associate(self, access_token, session)

    original_verify = backend_class.verify_software_token

    def verify_software_token(
        self: Any, access_token: str, session: str, user_code: str, friendly_device_name: str
    ) -> Any:
        sessions = _sessions(self)
        if session and session not in sessions:
            raise models.NotAuthorizedError(EXPIRED)
        try:
            result = original_verify(self, access_token, session, user_code, friendly_device_name)
        except Exception as exc:
            if session or getattr(exc, "error_type", "") != "EnableSoftwareTokenMFAException":
                raise
            if not _verifies_active_secret(self, access_token, user_code):
                raise
            return {"Status": "SUCCESS"}
        if session and result.get("Session"):
            sessions.mark_verified(result["Session"])
        return result

    backend_class.initiate_auth = initiate_auth
    backend_class.respond_to_auth_challenge = respond_to_auth_challenge
    backend_class.associate_software_token = associate_software_token
    backend_class.verify_software_token = verify_software_token
    _installed = True


def _has_mfa(user: Any) -> bool:
    return bool(
        user.software_token_mfa_enabled
        or user.sms_mfa_enabled
        or getattr(user, "token_verified", False)
    )


def _verifies_active_secret(backend: Any, access_token: str, code: str) -> bool:
    """A code of the token owner's active authenticator (the fidelity layer's secrets)."""
    for pool in backend.user_pools.values():
        if access_token in pool.access_tokens:
            _, username = pool.access_tokens[access_token]
            user = pool._get_user(username)
            totp = layer_for(pool).totp
            return (
                user is not None
                and not totp.has_pending(user.id)  # a new secret waits: only its codes count
                and totp.has_secret(user.id)
                and totp.verify(user.id, code)
            )
    return False

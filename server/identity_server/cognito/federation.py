"""Federated sign-in (Google through the hosted UI): the sealed transaction and its checks.

StartFederatedSignIn makes a fresh `state`, `nonce` and PKCE verifier and
seals them, with the redirect URI, the provider and an expiry, into one opaque
value: AES-256-GCM under a key derived with HKDF-SHA256 from the app client
secret the service already loads (or, for a client without a secret, a random
key per process). The BFF keeps that value (in an httpOnly cookie) and hands
it back with the callback's `code` and `state`; it can neither read nor change
nor forget any of the checks: an altered value fails to open, an old one has
expired, and the state is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from identity_server._errors import FederatedSignInFailed, FederatedSignInRestart
from identity_server.cognito.hosted_ui import HostedUi

TRANSACTION_LIFETIME: Final = 600
MAX_TRANSACTION: Final = 2048
_VERSION: Final = b"\x01"
_AAD: Final = b"identity.v1/federated-sign-in/1/"
_HKDF_INFO: Final = b"identity.v1 federated sign-in transaction key"

TRANSACTION_INVALID: Final = "FEDERATED_TRANSACTION_INVALID"
TRANSACTION_EXPIRED: Final = "FEDERATED_TRANSACTION_EXPIRED"
STATE_MISMATCH: Final = "FEDERATED_STATE_MISMATCH"
NONCE_MISMATCH: Final = "FEDERATED_NONCE_MISMATCH"
AUDIENCE_MISMATCH: Final = "FEDERATED_AUDIENCE_MISMATCH"
ACCESS_DENIED: Final = "FEDERATED_ACCESS_DENIED"
ACCOUNT_LINKED: Final = "FEDERATED_ACCOUNT_LINKED"
SIGN_UP_REFUSED: Final = "FEDERATED_SIGN_UP_REFUSED"
PROVIDER_ERROR: Final = "FEDERATED_PROVIDER_ERROR"
REDIRECT_MISMATCH: Final = "FEDERATED_REDIRECT_MISMATCH"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)), unpadded."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class Transaction:
    """What the sealed value holds. Never printed: repr hides the secrets."""

    provider: str
    redirect_uri: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    expires_at: int

    @classmethod
    def new(cls, provider: str, redirect_uri: str, now: float) -> Transaction:
        """Fresh random state, nonce (256 bits each) and verifier (43 characters)."""
        return cls(
            provider=provider,
            redirect_uri=redirect_uri,
            state=_b64(secrets.token_bytes(32)),
            nonce=_b64(secrets.token_bytes(32)),
            code_verifier=_b64(secrets.token_bytes(32)),
            expires_at=int(now) + TRANSACTION_LIFETIME,
        )


class Sealer:
    """Seals and opens transactions with AES-256-GCM; the key never leaves the service."""

    def __init__(
        self,
        secret: Callable[[], str] | None,
        client_id: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Without a client secret, a random key: values open only in this process.
        self._random = secrets.token_bytes(32)
        self._secret = secret
        self._aad = _AAD + client_id.encode()
        self.clock = clock  # stamps a new transaction's expiry and checks it
        self._derived: tuple[bytes, bytes] = (b"", b"")  # (material, key)

    def _key(self) -> bytes:
        # Derived again only when the secret changes (a rotation), not per call.
        material = self._secret().encode() if self._secret is not None else self._random
        known, key = self._derived
        if material != known or not key:
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
                material
            )
            self._derived = (material, key)
        return key

    def seal(self, transaction: Transaction) -> str:
        """The opaque value: base64url(12-byte nonce || ciphertext and tag)."""
        body = json.dumps(
            {
                "p": transaction.provider,
                "r": transaction.redirect_uri,
                "s": transaction.state,
                "n": transaction.nonce,
                "v": transaction.code_verifier,
                "e": transaction.expires_at,
            },
            separators=(",", ":"),
        ).encode()
        iv = secrets.token_bytes(12)
        return _b64(_VERSION + iv + AESGCM(self._key()).encrypt(iv, body, self._aad))

    def open(self, value: str) -> Transaction:
        """The transaction in `value`; FEDERATED_TRANSACTION_INVALID or _EXPIRED otherwise."""
        try:
            raw = _unb64(value)
            if raw[:1] != _VERSION or len(raw) < 1 + 12 + 16:
                raise ValueError("not a sealed transaction")
            body = AESGCM(self._key()).decrypt(raw[1:13], raw[13:], self._aad)
            data = json.loads(body)
            transaction = Transaction(
                provider=str(data["p"]),
                redirect_uri=str(data["r"]),
                state=str(data["s"]),
                nonce=str(data["n"]),
                code_verifier=str(data["v"]),
                expires_at=int(data["e"]),
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise FederatedSignInFailed(
                "The sign-in transaction is not valid; start the sign-in again.",
                reason=TRANSACTION_INVALID,
            ) from None
        if self.clock() >= transaction.expires_at:
            raise FederatedSignInFailed(
                "The sign-in took too long; start it again.", reason=TRANSACTION_EXPIRED
            )
        return transaction


def check_state(transaction: Transaction, state: str) -> None:
    """The callback's state is the one sealed, compared in constant time."""
    if not hmac.compare_digest(transaction.state.encode(), state.encode()):
        raise FederatedSignInFailed(
            "The callback's state does not match this sign-in.", reason=STATE_MISMATCH
        )


def check_id_token(
    transaction: Transaction, claims: Mapping[str, object], audience: str, client_id: str
) -> None:
    """The verified id token is for this app client and carries this sign-in's nonce."""
    if not hmac.compare_digest(audience.encode(), client_id.encode()):
        raise FederatedSignInFailed(
            "The id token was issued to another client.", reason=AUDIENCE_MISMATCH
        )
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode(), transaction.nonce.encode()
    ):
        raise FederatedSignInFailed(
            "The id token does not carry this sign-in's nonce.", reason=NONCE_MISMATCH
        )


def callback_error(error: str, description: str) -> FederatedSignInFailed | FederatedSignInRestart:
    """The error for a callback that came back with `error=` instead of a code.

    The description is matched, never echoed (it may name the user).
    """
    if "already found an entry for username" in description.lower():
        # Cognito's first sign-in after the PreSignUp trigger linked the
        # provider identity to an existing account: the next one succeeds.
        return FederatedSignInRestart(reason=ACCOUNT_LINKED)
    if error == "access_denied":
        return FederatedSignInFailed(
            "The user did not allow the sign-in at the provider.", reason=ACCESS_DENIED
        )
    if error == "redirect_mismatch":
        return FederatedSignInFailed(
            "The redirect URI is not a callback URL of the app client.", reason=REDIRECT_MISMATCH
        )
    if "presignup failed" in description.lower():
        return FederatedSignInFailed(
            "The user pool's rules refused this account.", reason=SIGN_UP_REFUSED
        )
    return FederatedSignInFailed(
        "The identity provider answered with an error.", reason=PROVIDER_ERROR
    )


@dataclass(frozen=True)
class Federation:
    """What federated sign-in needs: the hosted UI, the sealer and the allowed URLs."""

    hosted_ui: HostedUi
    sealer: Sealer
    redirect_uris: frozenset[str]
    scopes: tuple[str, ...]

    def start(self, provider: str, redirect_uri: str) -> tuple[str, str]:
        """(the authorize URL, the sealed transaction) of a new sign-in."""
        transaction = Transaction.new(provider, redirect_uri, self.sealer.clock())
        url = self.hosted_ui.authorize_url(
            provider=provider,
            redirect_uri=redirect_uri,
            scopes=self.scopes,
            state=transaction.state,
            nonce=transaction.nonce,
            code_challenge=code_challenge(transaction.code_verifier),
        )
        return url, self.sealer.seal(transaction)

"""TokenSession / AsyncTokenSession: one user's tokens, refreshed before they expire."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable

from identity_client._async_client import AsyncIdentityClient
from identity_client._client import IdentityClient
from identity_client._errors import IdentityError, Unauthenticated
from identity_client._models import AuthTokens, TotpSetup, User, unverified_expiry

Clock = Callable[[], float]


class _Schedule:
    """When the current access token must be refreshed, on the session's clock."""

    def __init__(self, tokens: AuthTokens, now: float, margin: float) -> None:
        expires_at = unverified_expiry(tokens.access_token)
        if expires_at is None:
            expires_at = now + tokens.expires_in
        self.expires_at = expires_at
        # Refresh `margin` seconds early, but not in the first half of the
        # token's life: a short-lived token must not be refreshed on every use.
        if tokens.expires_in > 0:
            margin = min(margin, tokens.expires_in / 2)
        self.refresh_at = expires_at - margin

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at


def _check(tokens: AuthTokens, refresh_margin: float) -> None:
    if not tokens.refresh_token:
        raise ValueError("a TokenSession needs tokens with a refresh token (from sign-in)")
    if not refresh_margin >= 0:
        raise ValueError("refresh_margin must be a non-negative number of seconds")


class TokenSession:
    """Holds one user's tokens for a blocking client; safe to share between threads.

    `access_token()` returns a token that is not about to expire: when less
    than `refresh_margin` seconds are left (by `clock`, Unix seconds), it
    refreshes first. Concurrent callers wait for that one refresh. A failed
    refresh raises; an expired token is never handed out. A refresh token
    that the server rejects (`Unauthenticated`) ends the session: later calls
    raise the same error without asking the server again.
    """

    def __init__(
        self,
        client: IdentityClient,
        tokens: AuthTokens,
        *,
        refresh_margin: float = 60.0,
        clock: Clock = time.time,
    ) -> None:
        _check(tokens, refresh_margin)
        self._client = client
        self._tokens = tokens
        self._margin = refresh_margin
        self._clock = clock
        self._schedule = _Schedule(tokens, clock(), refresh_margin)
        self._failure: IdentityError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenSession(username={self._tokens.username!r})"

    @property
    def tokens(self) -> AuthTokens:
        """The current tokens (store them to resume the session later)."""
        return self._tokens

    def access_token(self) -> str:
        """A current access token, refreshed first when it is about to expire."""
        with self._lock:
            if self._failure is not None:
                raise copy.copy(self._failure)
            if self._schedule.fresh(self._clock()):
                return self._tokens.access_token
            try:
                tokens = self._client.refresh(
                    refresh_token=self._tokens.refresh_token, username=self._tokens.username
                )
            except Unauthenticated as exc:
                self._failure = exc
                raise
            self._tokens = tokens
            self._schedule = _Schedule(tokens, self._clock(), self._margin)
            return tokens.access_token

    def get_current_user(self, *, timeout: float | None = None) -> User:
        """The profile of this session's user."""
        return self._client.get_current_user(access_token=self.access_token(), timeout=timeout)

    def sign_out(self, *, everywhere: bool = True, timeout: float | None = None) -> None:
        """Sign out everywhere, or (`everywhere=False`) revoke only this session's refresh token."""
        refresh_token = "" if everywhere else self._tokens.refresh_token
        self._client.sign_out(
            access_token=self.access_token(), refresh_token=refresh_token, timeout=timeout
        )

    def set_up_totp(self, *, timeout: float | None = None) -> TotpSetup:
        """Start TOTP set-up for this session's user."""
        return self._client.set_up_totp(access_token=self.access_token(), timeout=timeout)

    def confirm_totp(
        self, *, code: str, friendly_device_name: str = "", timeout: float | None = None
    ) -> None:
        """Confirm TOTP set-up with a first code."""
        self._client.confirm_totp(
            access_token=self.access_token(),
            code=code,
            friendly_device_name=friendly_device_name,
            timeout=timeout,
        )

    def disable_totp(self, *, code: str, timeout: float | None = None) -> None:
        """Turn TOTP off with a current code."""
        self._client.disable_totp(access_token=self.access_token(), code=code, timeout=timeout)


class AsyncTokenSession:
    """Holds one user's tokens for an async client; safe to share between tasks.

    The same rules as `TokenSession`: refreshed `refresh_margin` seconds before
    expiry, one refresh shared by concurrent tasks, failures raised.
    """

    def __init__(
        self,
        client: AsyncIdentityClient,
        tokens: AuthTokens,
        *,
        refresh_margin: float = 60.0,
        clock: Clock = time.time,
    ) -> None:
        _check(tokens, refresh_margin)
        self._client = client
        self._tokens = tokens
        self._margin = refresh_margin
        self._clock = clock
        self._schedule = _Schedule(tokens, clock(), refresh_margin)
        self._failure: IdentityError | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AsyncTokenSession(username={self._tokens.username!r})"

    @property
    def tokens(self) -> AuthTokens:
        """The current tokens (store them to resume the session later)."""
        return self._tokens

    async def access_token(self) -> str:
        """A current access token, refreshed first when it is about to expire."""
        async with self._lock:
            if self._failure is not None:
                raise copy.copy(self._failure)
            if self._schedule.fresh(self._clock()):
                return self._tokens.access_token
            try:
                tokens = await self._client.refresh(
                    refresh_token=self._tokens.refresh_token, username=self._tokens.username
                )
            except Unauthenticated as exc:
                self._failure = exc
                raise
            self._tokens = tokens
            self._schedule = _Schedule(tokens, self._clock(), self._margin)
            return tokens.access_token

    async def get_current_user(self, *, timeout: float | None = None) -> User:
        """The profile of this session's user."""
        access_token = await self.access_token()
        return await self._client.get_current_user(access_token=access_token, timeout=timeout)

    async def sign_out(self, *, everywhere: bool = True, timeout: float | None = None) -> None:
        """Sign out everywhere, or (`everywhere=False`) revoke only this session's refresh token."""
        refresh_token = "" if everywhere else self._tokens.refresh_token
        access_token = await self.access_token()
        await self._client.sign_out(
            access_token=access_token, refresh_token=refresh_token, timeout=timeout
        )

    async def set_up_totp(self, *, timeout: float | None = None) -> TotpSetup:
        """Start TOTP set-up for this session's user."""
        access_token = await self.access_token()
        return await self._client.set_up_totp(access_token=access_token, timeout=timeout)

    async def confirm_totp(
        self, *, code: str, friendly_device_name: str = "", timeout: float | None = None
    ) -> None:
        """Confirm TOTP set-up with a first code."""
        access_token = await self.access_token()
        await self._client.confirm_totp(
            access_token=access_token,
            code=code,
            friendly_device_name=friendly_device_name,
            timeout=timeout,
        )

    async def disable_totp(self, *, code: str, timeout: float | None = None) -> None:
        """Turn TOTP off with a current code."""
        access_token = await self.access_token()
        await self._client.disable_totp(access_token=access_token, code=code, timeout=timeout)

"""The fidelity layer's rules on their own, and its assumptions about moto."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pyotp
import pytest

from identity_server.local import layer
from identity_server.local.clock import Clock
from identity_server.local.codes import MAX_WRONG, CodeRefused, Codes
from identity_server.local.lockout import LockedOut, Lockout, lock_seconds
from identity_server.local.outbox import RESET, SIGN_UP
from identity_server.local.totp import Totp

ROOT = Path(__file__).resolve().parents[2]


def test_moto_is_the_version_the_layer_was_written_for() -> None:
    pinned = re.search(r"^moto==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned is not None
    assert pinned.group(1) == layer.MOTO_VERSION
    layer.check_moto()  # raises MotoChanged, naming what changed, after an upgrade


def test_a_different_moto_version_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.metadata.version", lambda name: "5.3.0")
    with pytest.raises(layer.MotoChanged, match=r"moto 5\.3\.0 is installed"):
        layer.check_moto()


def test_a_changed_moto_signature_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    models: Any = pytest.importorskip("moto.cognitoidp.models")

    def sign_up(self: Any, client_id: str, username: str, password: str) -> None: ...

    monkeypatch.setattr(models.CognitoIdpBackend, "sign_up", sign_up)
    with pytest.raises(layer.MotoChanged, match=r"CognitoIdpBackend\.sign_up"):
        layer.check_moto()


@pytest.fixture
def clock() -> Clock:
    stopped = Clock()
    stopped.freeze()
    return stopped


def test_codes_are_six_digits_single_use_and_expire(clock: Clock) -> None:
    codes = Codes(clock)
    code = codes.issue(SIGN_UP, "u")
    assert re.fullmatch(r"[0-9]{6}", code)
    codes.redeem(SIGN_UP, "u", code)
    with pytest.raises(CodeRefused, match="mismatch"):
        codes.redeem(SIGN_UP, "u", code)
    reset = codes.issue(RESET, "u")
    clock.advance(3600)
    with pytest.raises(CodeRefused, match="expired"):
        codes.redeem(RESET, "u", reset)


def test_a_new_code_supersedes_the_old_one(clock: Clock) -> None:
    codes = Codes(clock)
    first = codes.issue(SIGN_UP, "u")
    second = codes.issue(SIGN_UP, "u")
    if first != second:
        with pytest.raises(CodeRefused):
            codes.redeem(SIGN_UP, "u", first)
    codes.redeem(SIGN_UP, "u", second)


def test_wrong_codes_hit_the_limit_even_without_a_live_code(clock: Clock) -> None:
    codes = Codes(clock)
    right = codes.issue(RESET, "known")
    wrong = "000000" if right != "000000" else "111111"
    for user in ("known", "unknown"):
        for _ in range(MAX_WRONG):
            with pytest.raises(CodeRefused, match="mismatch"):
                codes.redeem(RESET, user, wrong)
        with pytest.raises(CodeRefused, match="limit"):
            codes.redeem(RESET, user, right)


def test_a_refused_new_password_keeps_the_code(clock: Clock) -> None:
    codes = Codes(clock)
    code = codes.issue(RESET, "u")

    def weak() -> None:
        raise ValueError("weak")

    with pytest.raises(ValueError, match="weak"):
        codes.redeem(RESET, "u", code, before=weak)
    codes.redeem(RESET, "u", code)


def test_lock_doubles_from_one_second_up_to_fifteen_minutes() -> None:
    assert [lock_seconds(n) for n in range(1, 9)] == [0, 0, 0, 0, 1, 2, 4, 8]
    assert lock_seconds(14) == 512
    assert lock_seconds(15) == lock_seconds(40) == 900


def test_concurrent_attempts_cannot_slip_past_the_lock(clock: Clock) -> None:
    lockout = Lockout(clock)
    checked = 0
    counter = threading.Lock()
    outcomes: list[str] = []

    def wrong_password() -> None:
        nonlocal checked
        with counter:
            checked += 1
        raise PermissionError("Incorrect username or password.")

    def attempt() -> None:
        try:
            lockout.attempt("k", wrong_password, lambda e: isinstance(e, PermissionError))
        except LockedOut:
            outcomes.append("locked")
        except PermissionError:
            outcomes.append("wrong")

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert checked == 5
    assert outcomes.count("wrong") == 5
    assert outcomes.count("locked") == 45
    assert lockout.failures("k") == 5


def test_attempts_during_a_lock_do_not_lengthen_it(clock: Clock) -> None:
    lockout = Lockout(clock)

    def wrong() -> None:
        raise PermissionError

    for _ in range(5):
        with pytest.raises(PermissionError):
            lockout.attempt("k", wrong, lambda e: True)
    clock.advance(0.5)
    with pytest.raises(LockedOut):
        lockout.attempt("k", lambda: "ok", lambda e: True)
    clock.advance(0.5)
    assert lockout.attempt("k", lambda: "ok", lambda e: True) == "ok"
    assert lockout.failures("k") == 0


def test_totp_accepts_one_step_of_drift_and_never_a_step_twice(clock: Clock) -> None:
    totp = Totp(clock)
    secret = totp.associate("u")
    assert Totp(clock).associate("u") != secret
    codes = pyotp.TOTP(secret)
    now = clock.now()
    assert not totp.verify_new("u", codes.at(now - 60))  # two steps back: too old
    assert totp.verify_new("u", codes.at(now - 30))
    assert not totp.verify("u", codes.at(now - 30))  # replay
    assert totp.verify("u", codes.at(now))
    assert not totp.verify("u", codes.at(now))  # replay
    assert not totp.verify("u", codes.at(now - 30))  # an older step after a newer one
    assert totp.verify("u", codes.at(now + 30))
    assert not totp.verify("u", codes.at(now + 90))  # too far ahead


def test_totp_refuses_codes_before_a_secret_is_verified(clock: Clock) -> None:
    totp = Totp(clock)
    secret = totp.associate("u")
    assert not totp.verify("u", pyotp.TOTP(secret).at(clock.now()))
    assert not totp.has_secret("u")

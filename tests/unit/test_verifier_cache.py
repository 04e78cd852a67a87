"""The verified-token cache: hits skip the signature, never outlive exp."""

from __future__ import annotations

import threading

import pytest

from identity_server._errors import TokenInvalid
from identity_server.tokens import jws as _jws
from identity_server.tokens.verifier import TokenVerifier
from tests.support.tokens import (
    KID,
    NOW,
    FakeClock,
    StaticFetcher,
    access_claims,
    id_claims,
    jwks_body,
    loaded_cache,
    mint,
    public_jwk,
    rsa_key,
    rsa_signer,
    verifier,
)

TOKEN = mint(access_claims())


class SignatureChecks:
    """Counts RSA signature checks made by the JWS path."""

    def __init__(self) -> None:
        self.count = 0
        self._real = _jws._check_signature

    def __call__(self, *args: object) -> None:
        self.count += 1
        self._real(*args)  # type: ignore[arg-type]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> SignatureChecks:
    counter = SignatureChecks()
    monkeypatch.setattr(_jws, "_check_signature", counter)
    return counter


def expect_reason(check: TokenVerifier, token: str, reason: str, token_use: str = "access") -> None:
    with pytest.raises(TokenInvalid) as caught:
        check.verify(token, token_use)  # type: ignore[arg-type]
    assert caught.value.reason == reason


def test_a_hit_returns_the_same_principal_without_a_signature_check(
    checks: SignatureChecks,
) -> None:
    check = verifier()
    first = check.verify(TOKEN)
    assert all(check.verify(TOKEN) is first for _ in range(100))
    assert checks.count == 1


def test_a_hit_still_checks_the_expected_token_use(checks: SignatureChecks) -> None:
    check = verifier()
    check.verify(TOKEN)
    expect_reason(check, TOKEN, "TOKEN_USE_MISMATCH", "id")
    id_token = mint(id_claims())
    check.verify(id_token, "id")
    expect_reason(check, id_token, "TOKEN_USE_MISMATCH", "access")
    assert checks.count == 2


def test_an_entry_lasts_until_exp_and_not_a_second_longer(checks: SignatureChecks) -> None:
    clock = FakeClock()
    check = verifier(clock=clock)
    check.verify(TOKEN)
    clock.now = NOW + 3600 - 0.001
    check.verify(TOKEN)
    assert checks.count == 1
    clock.now = NOW + 3600
    check.verify(TOKEN)  # inside the leeway: verified again, not cached again
    check.verify(TOKEN)
    assert checks.count == 3
    clock.now = NOW + 3600 + 30
    expect_reason(check, TOKEN, "TOKEN_EXPIRED")


def test_the_cache_holds_at_most_cache_size_tokens_dropping_the_oldest(
    checks: SignatureChecks,
) -> None:
    check = verifier(cache_size=3)
    tokens = [mint(access_claims(jti=f"jti-{i}")) for i in range(5)]
    for token in tokens:
        check.verify(token)
    assert len(check._cache) == 3
    assert list(check._cache) == tokens[2:]
    check.verify(tokens[4])
    assert checks.count == 5
    check.verify(tokens[0])
    assert checks.count == 6


def test_cache_size_zero_caches_nothing(checks: SignatureChecks) -> None:
    check = verifier(cache_size=0)
    for _ in range(3):
        check.verify(TOKEN)
    assert checks.count == 3


def test_failures_are_not_cached(checks: SignatureChecks) -> None:
    check = verifier()
    token = mint(access_claims(client_id="someone-else"))
    for _ in range(3):
        expect_reason(check, token, "TOKEN_CLIENT_INVALID")
    assert checks.count == 3
    assert not check._cache


def test_a_key_set_change_empties_the_cache(checks: SignatureChecks) -> None:
    fetcher = StaticFetcher()
    keys = loaded_cache(fetcher)
    check = verifier(keys)
    check.verify(TOKEN)
    fetcher.body = jwks_body(public_jwk(rsa_key(), KID), public_jwk(rsa_key("next"), "next"))
    assert keys.refresh()
    check.verify(TOKEN)
    check.verify(TOKEN)
    assert checks.count == 2


def test_a_token_whose_key_left_the_set_is_rejected_despite_the_cache() -> None:
    fetcher = StaticFetcher()
    keys = loaded_cache(fetcher)
    check = verifier(keys)
    check.verify(TOKEN)
    fetcher.body = jwks_body(public_jwk(rsa_key("next"), "next"))
    assert keys.refresh()
    expect_reason(check, TOKEN, "KEY_UNKNOWN")


def test_a_refetch_of_the_same_set_keeps_the_cache(checks: SignatureChecks) -> None:
    keys = loaded_cache()
    check = verifier(keys)
    check.verify(TOKEN)
    assert keys.refresh()
    check.verify(TOKEN)
    assert checks.count == 1


def test_concurrent_verification_with_eviction_stays_consistent() -> None:
    check = verifier(cache_size=7)
    tokens = [mint(access_claims(jti=f"jti-{i}"), signer=rsa_signer(rsa_key())) for i in range(20)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(300):
                token = tokens[(i + offset) % len(tokens)]
                assert check.verify(token).jti == f"jti-{(i + offset) % len(tokens)}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(check._cache) <= 7

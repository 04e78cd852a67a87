"""The key-set cache: URL policy, document validation, refetch guard, rotation."""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

import pytest

from identity_server._errors import TokenInvalid, Unavailable
from identity_server.tokens.jwks import (
    MAX_JWKS_BYTES,
    JwksCache,
    JwksError,
    parse_jwks,
    validate_jwks_url,
)
from tests.support.tokens import (
    JWKS_URL,
    KID,
    FakeClock,
    JwksServer,
    StaticFetcher,
    access_claims,
    b64url,
    ec_key,
    jwks,
    jwks_body,
    loaded_cache,
    mint,
    public_jwk,
    rsa_key,
    rsa_signer,
    verifier,
)


def main_jwk(**extra: object) -> dict[str, object]:
    return public_jwk(rsa_key(), KID, **extra)


def without(entry: dict[str, object], *names: str) -> dict[str, object]:
    return {name: value for name, value in entry.items() if name not in names}


def ec_jwk(kid: str = "ec") -> dict[str, object]:
    numbers = ec_key().public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "kid": kid,
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


# --- the URL policy ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
        "http://127.0.0.1:5000/pool/.well-known/jwks.json",
        "http://127.8.9.10/jwks.json",
        "http://[::1]:8080/jwks.json",
        "http://localhost:5000/jwks.json",
    ],
)
def test_accepts_https_and_loopback_http_urls(url: str) -> None:
    assert validate_jwks_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
        "http://127.0.0.1.attacker.example/jwks.json",
        "http://10.0.0.1/jwks.json",
        "ftp://127.0.0.1/jwks.json",
        "file:///etc/passwd",
        "https:///no-host",
        "https://user:secret@cognito.example/jwks.json",
        "https://[::1/jwks.json",
        "jwks.json",
    ],
)
def test_rejects_other_urls_with_a_one_line_message(url: str) -> None:
    with pytest.raises(ValueError, match="JWKS URL") as caught:
        validate_jwks_url(url)
    assert "\n" not in str(caught.value)
    assert "secret" not in str(caught.value)


def test_cache_refuses_a_plain_http_url_for_a_remote_host() -> None:
    with pytest.raises(ValueError, match="https"):
        JwksCache("http://cognito.example/jwks.json")


# --- which keys a document yields -------------------------------------------


def test_loads_rsa_signing_keys_with_alg_and_use_present_or_absent() -> None:
    bare = without(public_jwk(rsa_key("b"), "bare"), "alg", "use")
    entries = [main_jwk(), bare, public_jwk(rsa_key("c"), "ops", key_ops=["verify"])]
    keys = parse_jwks(jwks_body(*entries))
    assert set(keys) == {KID, "bare", "ops"}
    assert keys["bare"].public_numbers() == rsa_key("b").public_key().public_numbers()


@pytest.mark.parametrize(
    "skipped",
    [
        pytest.param(ec_jwk(), id="ec"),
        pytest.param({"kty": "oct", "kid": "hmac", "k": b64url(b"k" * 32)}, id="oct"),
        pytest.param(public_jwk(rsa_key("s"), "enc", use="enc"), id="use-enc"),
        pytest.param(public_jwk(rsa_key("s"), "rs512", alg="RS512"), id="alg-rs512"),
        pytest.param(public_jwk(rsa_key("s"), "ps256", alg="PS256"), id="alg-ps256"),
        pytest.param(public_jwk(rsa_key("s"), "ops", key_ops=["encrypt"]), id="key-ops-encrypt"),
        pytest.param(public_jwk(rsa_key("weak", 1024), "weak"), id="1024-bit"),
        pytest.param(without(public_jwk(rsa_key("s"), "x"), "kid"), id="no-kid"),
    ],
)
def test_skips_keys_we_must_not_verify_rs256_with(skipped: dict[str, object]) -> None:
    assert set(parse_jwks(jwks_body(main_jwk(), skipped))) == {KID}


def document(**changes: Any) -> bytes:
    return jwks_body(main_jwk(**changes))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>not json</html>", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"keys": {}}', id="keys-not-a-list"),
        pytest.param(b"{}", id="no-keys"),
        pytest.param(b'{"keys": []}', id="empty"),
        pytest.param(json.dumps({"keys": ["x", main_jwk()]}).encode(), id="entry-not-object"),
        pytest.param(jwks_body(without(main_jwk(), "n")), id="n-missing"),
        pytest.param(jwks_body(without(main_jwk(), "e")), id="e-missing"),
        pytest.param(document(n=None), id="n-null"),
        pytest.param(document(e=65537), id="e-not-a-string"),
        pytest.param(document(e="AQAB="), id="e-padded"),
        pytest.param(document(e="AQAC"), id="e-even"),
        pytest.param(document(e="AQ"), id="e-one"),
        pytest.param(document(e="AQAB "), id="e-whitespace"),
        pytest.param(document(n=b64url(b"\xff" * 255 + b"\xfe")), id="n-even"),
        pytest.param(document(kid=7), id="kid-not-a-string"),
        pytest.param(document(d="AQAB"), id="private-exponent"),
        pytest.param(jwks_body(main_jwk(), main_jwk()), id="duplicate-kid"),
        pytest.param(jwks_body(main_jwk(), ec_jwk(KID)), id="duplicate-kid-with-skipped-key"),
        pytest.param(jwks_body(ec_jwk()), id="nothing-usable"),
        pytest.param(
            b'{"keys": [], "keys": ' + json.dumps([main_jwk()]).encode() + b"}",
            id="duplicate-member",
        ),
        pytest.param(jwks_body(main_jwk()) + b" " * MAX_JWKS_BYTES, id="over-1-mib"),
    ],
)
def test_malformed_documents_fail_closed(body: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(body)


def test_a_noncanonical_modulus_encoding_fails_closed() -> None:
    n = str(main_jwk()["n"])
    assert len(n) % 4 == 2
    flipped = n[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[n[-1]]
    with pytest.raises(JwksError):
        parse_jwks(document(n=flipped))


# --- the cache --------------------------------------------------------------


def test_not_ready_until_a_good_set_is_loaded() -> None:
    fetcher = StaticFetcher(b"not json")
    cache = JwksCache(JWKS_URL, fetcher=fetcher, clock=FakeClock())
    assert not cache.ready
    assert not cache.refresh()
    assert not cache.ready
    assert cache.generation == 0
    fetcher.body = jwks_body()
    assert cache.refresh()
    assert cache.ready
    assert cache.generation == 1
    assert (cache.fetch_count, cache.failure_count) == (2, 1)


@pytest.mark.parametrize(
    "bad_body",
    [b"{", jwks_body(main_jwk(), main_jwk()), document(e="AQ"), jwks_body(ec_jwk())],
    ids=["truncated", "duplicate-kid", "exponent-one", "nothing-usable"],
)
def test_a_failed_fetch_keeps_the_last_good_set(bad_body: bytes) -> None:
    fetcher = StaticFetcher()
    cache = loaded_cache(fetcher)
    key = cache.get(KID)
    fetcher.body = bad_body
    assert not cache.refresh()
    assert cache.get(KID) is key
    assert cache.ready
    assert cache.generation == 1
    assert cache.failure_count == 1


def test_generation_changes_only_when_the_key_set_does() -> None:
    fetcher = StaticFetcher()
    cache = loaded_cache(fetcher)
    assert cache.refresh()
    assert cache.generation == 1
    fetcher.body = jwks_body(main_jwk(), public_jwk(rsa_key("next"), "next"))
    assert cache.refresh()
    assert cache.generation == 2
    fetcher.body = jwks_body(public_jwk(rsa_key("next"), KID))
    assert cache.refresh()
    assert cache.generation == 3


def test_known_kid_is_served_without_a_fetch() -> None:
    fetcher = StaticFetcher()
    cache = loaded_cache(fetcher)
    assert all(cache.get(KID) is not None for _ in range(100))
    assert fetcher.calls == 1


def test_unknown_kid_refetches_at_most_once_per_cooldown_window() -> None:
    clock, fetcher = FakeClock(), StaticFetcher()
    cache = loaded_cache(fetcher, clock, cooldown=30)
    assert cache.get("unknown") is None
    assert fetcher.calls == 1
    clock.advance(29.9)
    assert cache.get("unknown") is None
    assert fetcher.calls == 1
    clock.advance(0.1)
    assert cache.get("unknown") is None
    assert cache.get("unknown-2") is None
    assert fetcher.calls == 2


def test_unknown_kid_flood_costs_one_fetch_per_window() -> None:
    clock, fetcher = FakeClock(), StaticFetcher()
    cache = loaded_cache(fetcher, clock, cooldown=30)
    for window in range(1, 4):
        clock.advance(30)
        for i in range(1000):
            assert cache.get(f"random-{window}-{i}") is None
        assert fetcher.calls == 1 + window


def test_a_new_kid_appears_after_the_guarded_refetch() -> None:
    clock, fetcher = FakeClock(), StaticFetcher()
    cache = loaded_cache(fetcher, clock)
    fetcher.body = jwks_body(main_jwk(), public_jwk(rsa_key("next"), "next"))
    clock.advance(30)
    assert cache.get("next") is not None
    assert cache.generation == 2


def test_while_not_ready_a_miss_retries_the_fetch_once_per_window() -> None:
    clock, fetcher = FakeClock(), StaticFetcher()
    fetcher.down = True
    cache = JwksCache(JWKS_URL, fetcher=fetcher, clock=clock, cooldown=30)
    assert cache.get(KID) is None
    assert cache.get(KID) is None
    assert fetcher.calls == 1
    fetcher.down = False
    clock.advance(30)
    assert cache.get(KID) is not None
    assert cache.ready


def test_twenty_concurrent_misses_share_one_fetch() -> None:
    clock = FakeClock()
    arrived, release = threading.Semaphore(0), threading.Event()
    fetcher = StaticFetcher()
    cache = loaded_cache(fetcher, clock)
    fetcher.body = jwks_body(main_jwk(), public_jwk(rsa_key("next"), "next"))
    clock.advance(30)

    def slow_fetch(url: str, timeout: float) -> bytes:
        release.wait(5)
        return fetcher(url, timeout)

    cache._fetcher = slow_fetch
    found: list[bool] = []

    def miss() -> None:
        arrived.release()
        found.append(cache.get("next") is not None)

    threads = [threading.Thread(target=miss) for _ in range(20)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert arrived.acquire(timeout=5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert found == [True] * 20
    assert fetcher.calls == 2


def test_on_fetch_reports_every_attempt() -> None:
    outcomes: list[bool] = []
    fetcher = StaticFetcher()
    cache = JwksCache(JWKS_URL, fetcher=fetcher, clock=FakeClock(), on_fetch=outcomes.append)
    cache.refresh()
    fetcher.down = True
    cache.refresh()
    assert outcomes == [True, False]


@pytest.mark.parametrize(("ttl", "cooldown", "timeout"), [(0, 30, 5), (3600, -1, 5), (3600, 30, 0)])
def test_rejects_nonsense_timings(ttl: float, cooldown: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        JwksCache(JWKS_URL, ttl=ttl, cooldown=cooldown, timeout=timeout)


# --- the background refresh -------------------------------------------------


def test_next_refresh_is_before_ttl_and_sooner_while_failing() -> None:
    fetcher = StaticFetcher()
    cache = JwksCache(JWKS_URL, ttl=600, cooldown=30, fetcher=fetcher, clock=FakeClock())
    assert cache._next_delay() == 0
    fetcher.down = True
    cache.refresh()
    assert cache._next_delay() == 1.0
    fetcher.down = False
    cache.refresh()
    assert cache._next_delay() == pytest.approx(540)
    fetcher.down = True
    cache.refresh()
    assert cache._next_delay() == 30


def test_background_thread_loads_refreshes_and_stops() -> None:
    fetcher = StaticFetcher()
    refreshed = threading.Event()
    outcomes: list[bool] = []

    def on_fetch(ok: bool) -> None:
        outcomes.append(ok)
        if len(outcomes) == 3:
            refreshed.set()

    cache = JwksCache(JWKS_URL, ttl=0.01, fetcher=fetcher, on_fetch=on_fetch)
    cache.start()
    thread = cache._thread
    cache.start()
    assert cache._thread is thread
    try:
        assert refreshed.wait(5)
        assert cache.ready
    finally:
        cache.stop()
    assert thread is not None
    assert not thread.is_alive()
    assert outcomes[:3] == [True, True, True]


# --- over real loopback HTTP ------------------------------------------------


def http_cache(server: JwksServer, clock: FakeClock | None = None) -> JwksCache:
    return JwksCache(server.url, timeout=2, clock=clock or FakeClock())


def test_fetches_the_set_over_loopback_http() -> None:
    with JwksServer().running() as server:
        cache = http_cache(server)
        assert cache.refresh()
        assert cache.get(KID) is not None
        assert server.hits == 1


@pytest.mark.parametrize("mode", ["500", "close"])
def test_server_down_keeps_cached_keys_and_refetches_once_per_window(
    mode: Literal["500", "close"],
) -> None:
    clock = FakeClock()
    with JwksServer().running() as server:
        cache = http_cache(server, clock)
        assert cache.refresh()
        server.take_down(mode)
        clock.advance(30)
        assert cache.get("unknown") is None
        assert cache.get("unknown") is None
        assert cache.get(KID) is not None
        assert server.hits == 2
        assert cache.failure_count == 1


def test_redirects_are_not_followed() -> None:
    with JwksServer().running() as target, JwksServer().running() as server:
        server.redirect_to = target.url
        assert not http_cache(server).refresh()
        assert target.hits == 0


def test_a_body_over_the_cap_fails_the_fetch() -> None:
    with JwksServer(jwks_body() + b" " * MAX_JWKS_BYTES).running() as server:
        cache = http_cache(server)
        assert not cache.refresh()
        assert cache.failure_count == 1


# --- rotation through the verifier ------------------------------------------


def test_token_from_a_rotated_key_is_accepted_after_the_refetch() -> None:
    clock = FakeClock()
    with JwksServer().running() as server:
        keys = http_cache(server, clock)
        assert keys.refresh()
        check = verifier(keys, clock)
        server.serve(jwks(main_jwk(), public_jwk(rsa_key("next"), "next")))
        clock.advance(30)
        token = mint(access_claims(), kid="next", signer=rsa_signer(rsa_key("next")))
        assert check.verify(token).sub == access_claims()["sub"]
        assert server.hits == 2


def test_key_set_down_keeps_known_keys_and_rejects_unknown_kids() -> None:
    clock = FakeClock()
    with JwksServer().running() as server:
        keys = http_cache(server, clock)
        assert keys.refresh()
        check = verifier(keys, clock)
        server.take_down()
        clock.advance(30)
        stranger = mint(access_claims(), kid="next", signer=rsa_signer(rsa_key("next")))
        for _ in range(5):
            with pytest.raises(TokenInvalid) as caught:
                check.verify(stranger)
            assert caught.value.reason == "KEY_UNKNOWN"
        assert check.verify(mint(access_claims())).username == "alice"
        assert server.hits == 2


@pytest.mark.parametrize(
    "bad_document",
    [b"{}", jwks_body(main_jwk(), public_jwk(rsa_key("next"), KID))],
    ids=["malformed", "duplicate-kid"],
)
def test_a_bad_new_set_keeps_the_last_good_one(bad_document: bytes) -> None:
    clock = FakeClock()
    with JwksServer().running() as server:
        keys = http_cache(server, clock)
        assert keys.refresh()
        check = verifier(keys, clock, cache_size=0)
        server.serve(bad_document)
        assert not keys.refresh()
        assert check.verify(mint(access_claims())).token_use == "access"


def test_verifier_is_unavailable_until_keys_load() -> None:
    fetcher = StaticFetcher()
    fetcher.down = True
    keys = JwksCache(JWKS_URL, fetcher=fetcher, clock=FakeClock())
    with pytest.raises(Unavailable) as caught:
        verifier(keys).verify(mint(access_claims()))
    assert caught.value.reason == "KEYS_UNAVAILABLE"


def test_unavailable_does_not_hide_a_malformed_token() -> None:
    keys = JwksCache(JWKS_URL, fetcher=StaticFetcher(b"{}"), clock=FakeClock())
    with pytest.raises(TokenInvalid) as caught:
        verifier(keys).verify("not.a.token")
    assert caught.value.reason == "TOKEN_MALFORMED"


def test_a_failed_first_fetch_logs_the_url_and_that_no_key_set_was_ever_loaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetcher = StaticFetcher()
    fetcher.down = True
    cache = JwksCache(JWKS_URL, fetcher=fetcher, clock=FakeClock())
    with caplog.at_level("WARNING", logger="identity_server"):
        assert not cache.refresh()
    (message,) = [record.getMessage() for record in caplog.records]
    assert JWKS_URL in message
    assert "no key set was ever loaded" in message
    assert "last good" not in message


def test_a_failed_refetch_after_a_load_logs_the_url_and_keeps_the_last_good_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetcher = StaticFetcher()
    cache = loaded_cache(fetcher)
    fetcher.down = True
    with caplog.at_level("WARNING", logger="identity_server"):
        assert not cache.refresh()
    (message,) = [record.getMessage() for record in caplog.records]
    assert JWKS_URL in message
    assert "keeping the last good key set" in message

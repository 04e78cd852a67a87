"""Metrics: the series and labels observed, over the real HTTP endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from identity_server._metrics import Metrics

SIGN_IN = "/identity.v1.IdentityService/SignIn"
VERIFY = "/identity.v1.IdentityService/VerifyToken"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def scrape(host: str, port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
        assert response.status == 200
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.close()


def test_scrape_shows_observed_rpcs_with_their_method_and_code(metrics: Metrics) -> None:
    metrics.observe_rpc(SIGN_IN, "OK", 0.02)
    metrics.observe_rpc(SIGN_IN, "OK", 0.03)
    metrics.observe_rpc(SIGN_IN, "UNAUTHENTICATED", 0.01)
    host, port = metrics.serve("127.0.0.1", 0)
    assert host == "127.0.0.1"
    assert port > 0

    got = samples(scrape(host, port))

    assert got[key("identity_rpc_total", method=SIGN_IN, code="OK")] == 2
    assert got[key("identity_rpc_total", method=SIGN_IN, code="UNAUTHENTICATED")] == 1
    assert got[key("identity_rpc_seconds_count", method=SIGN_IN)] == 3
    assert got[key("identity_rpc_seconds_sum", method=SIGN_IN)] == pytest.approx(0.06)
    rpc_labels = {dict(labels)["code"] for name, labels in got if name == "identity_rpc_total"}
    assert rpc_labels == {"OK", "UNAUTHENTICATED"}


def test_scrape_shows_verify_jwks_and_cognito_series(metrics: Metrics) -> None:
    metrics.observe_verify("ok")
    metrics.observe_verify("ok")
    metrics.observe_verify("TOKEN_EXPIRED")
    metrics.observe_jwks_fetch(ok=True)
    metrics.observe_jwks_fetch(ok=False)
    metrics.observe_jwks_fetch(ok=False)
    metrics.observe_cognito("InitiateAuth", "", 0.2)
    metrics.observe_cognito("InitiateAuth", "NotAuthorizedException", 0.1)
    host, port = metrics.serve("127.0.0.1", 0)

    got = samples(scrape(host, port))

    assert got[key("identity_verify_total", outcome="ok")] == 2
    assert got[key("identity_verify_total", outcome="TOKEN_EXPIRED")] == 1
    assert got[key("identity_jwks_fetch_total", result="ok")] == 1
    assert got[key("identity_jwks_fetch_total", result="error")] == 2
    assert got[key("identity_cognito_calls_total", operation="InitiateAuth", error="")] == 1
    assert (
        got[
            key(
                "identity_cognito_calls_total",
                operation="InitiateAuth",
                error="NotAuthorizedException",
            )
        ]
        == 1
    )
    assert got[key("identity_cognito_seconds_count", operation="InitiateAuth")] == 2
    assert got[key("identity_cognito_seconds_sum", operation="InitiateAuth")] == pytest.approx(0.3)


def test_latency_histogram_resolves_a_tenth_of_a_millisecond_to_ten_seconds(
    metrics: Metrics,
) -> None:
    metrics.observe_rpc(VERIFY, "OK", 0.0002)
    metrics.observe_rpc(VERIFY, "OK", 9.0)

    got = samples(metrics.render().decode())

    def bucket(le: str) -> float:
        return got[key("identity_rpc_seconds_bucket", method=VERIFY, le=le)]

    assert bucket("0.0001") == 0
    assert bucket("0.00025") == 1
    assert bucket("5.0") == 1
    assert bucket("10.0") == 2
    assert bucket("+Inf") == 2


def test_render_matches_what_the_endpoint_serves(metrics: Metrics) -> None:
    metrics.observe_verify("ok")
    host, port = metrics.serve("127.0.0.1", 0)

    assert samples(scrape(host, port)) == samples(metrics.render().decode())


def test_only_the_metrics_path_is_served(metrics: Metrics) -> None:
    metrics.observe_verify("ok")
    host, port = metrics.serve("127.0.0.1", 0)

    for path in ("/", "/metrics/", "/favicon.ico", "/debug"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            scrape(host, port, path)
        assert caught.value.code == 404, path
        caught.value.close()


def test_each_instance_has_its_own_registry_and_none_uses_the_global_one() -> None:
    first, second = Metrics(), Metrics()
    first.observe_verify("ok")

    assert key("identity_verify_total", outcome="ok") in samples(first.render().decode())
    assert key("identity_verify_total", outcome="ok") not in samples(second.render().decode())
    global_names = {family.name for family in REGISTRY.collect()}
    assert not any(name.startswith("identity_") for name in global_names)


def test_close_stops_the_endpoint_and_a_second_serve_is_refused(metrics: Metrics) -> None:
    host, port = metrics.serve("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        metrics.serve("127.0.0.1", 0)

    metrics.close()

    with pytest.raises(urllib.error.URLError):
        scrape(host, port)
    metrics.close()  # a second close is harmless

"""VerifyToken reuses a built answer only while the verifier returns the same principal."""

from __future__ import annotations

import asyncio
import types
from typing import Any, cast

import pytest

from identity.v1 import identity_service_pb2 as pb
from identity_server._aio import Offload
from identity_server._errors import InvalidArgument, PermissionDenied
from identity_server.api.servicer import IdentityServicer
from identity_server.tokens.verifier import VerifiedToken


def principal(sub: str) -> VerifiedToken:
    claims = {"sub": sub, "token_use": "access", "exp": 2, "iat": 1}
    return VerifiedToken(
        sub=sub,
        username=sub,
        email="",
        groups=("g",),
        scopes=("s",),
        client_id="c",
        token_use="access",
        issued_at=1,
        expires_at=2,
        auth_time=None,
        jti="j",
        origin_jti="o",
        claims=types.MappingProxyType(claims),
    )


class FakeVerifier:
    def __init__(self) -> None:
        self.answer = principal("first")

    def verify(self, token: str, token_use: str = "access") -> VerifiedToken:
        return self.answer


class FakeAsyncVerifier:
    def __init__(self, verifier: FakeVerifier) -> None:
        self._verifier = verifier

    async def verify(self, token: str, token_use: str = "access") -> VerifiedToken:
        return self._verifier.verify(token, token_use)


def servicer(verifier: FakeVerifier, size: int = 10) -> IdentityServicer:
    return IdentityServicer(
        cast(Any, None),
        cast(Any, FakeAsyncVerifier(verifier)),
        cast(Any, Offload(1)),
        response_cache_size=size,
    )


def answer(handler: IdentityServicer, request: pb.VerifyTokenRequest) -> pb.VerifyTokenResponse:
    return asyncio.run(handler.VerifyToken(request, cast(Any, None)))


def test_the_same_principal_gets_the_same_answer_object() -> None:
    verifier = FakeVerifier()
    handler = servicer(verifier)
    request = pb.VerifyTokenRequest(token="t")
    first = answer(handler, request)
    assert answer(handler, request) is first
    assert first.principal.sub == "first"
    assert first.claims["sub"] == "first"


def test_a_new_principal_for_the_same_token_is_answered_afresh() -> None:
    verifier = FakeVerifier()
    handler = servicer(verifier)
    request = pb.VerifyTokenRequest(token="t")
    first = answer(handler, request)
    verifier.answer = principal("second")  # e.g. the verifier's entry expired or keys changed
    again = answer(handler, request)
    assert again is not first
    assert again.principal.sub == "second"


def test_required_groups_are_checked_even_when_the_answer_is_cached() -> None:
    handler = servicer(FakeVerifier())
    answer(handler, pb.VerifyTokenRequest(token="t"))
    with pytest.raises(PermissionDenied):
        answer(handler, pb.VerifyTokenRequest(token="t", required_groups=["admins"]))


def test_the_answer_cache_is_bounded() -> None:
    handler = servicer(FakeVerifier(), size=3)
    for i in range(10):
        answer(handler, pb.VerifyTokenRequest(token=f"t{i}"))
    assert len(handler._responses) == 3


def test_a_renewed_answer_in_a_full_cache_evicts_nothing_else() -> None:
    verifier = FakeVerifier()
    handler = servicer(verifier, size=2)
    for token in ("a", "b"):
        answer(handler, pb.VerifyTokenRequest(token=token))
    verifier.answer = principal("renewed")  # a new principal for "b"
    answer(handler, pb.VerifyTokenRequest(token="b"))
    assert set(handler._responses) == {"a", "b"}


@pytest.mark.parametrize(
    ("groups", "scopes", "field"),
    [
        ([""], [], "required_groups"),
        (["g" * 257], [], "required_groups"),
        ([], [f"s{i}" for i in range(33)], "required_scopes"),
        ([], ["ok", ""], "required_scopes"),
    ],
)
def test_bad_requirements_are_refused_before_any_verification(
    groups: list[str], scopes: list[str], field: str
) -> None:
    verifier = FakeVerifier()
    handler = servicer(verifier)
    verifier.answer = cast(Any, None)  # verifying would fail the test differently
    with pytest.raises(InvalidArgument) as refused:
        answer(
            handler,
            pb.VerifyTokenRequest(token="t", required_groups=groups, required_scopes=scopes),
        )
    assert [v.field for v in refused.value.violations] == [field]

"""docs/cognito-errors.md, row by row: known and unknown accounts get byte-identical answers.

Every row names a Cognito error of one account RPC and what the other kind of
account gets from Cognito in the same request. Each row's test stubs Cognito
twice (botocore's Stubber), runs the RPC's real handler over the real gateway
both times, and compares the serialized answers byte for byte.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from google.protobuf.message import Message

from identity.v1 import identity_service_pb2 as pb
from identity_server._aio import Offload
from identity_server._errors import IdentityError
from identity_server.api.servicer import IdentityServicer
from identity_server.cognito.gateway import MAX_ATTEMPTS, CognitoGateway
from identity_server.cognito.password_policy import PasswordPolicy

TABLE = Path(__file__).parents[2] / "docs" / "cognito-errors.md"
EMAIL = "ada@example.com"
PASSWORD = "Correct-Horse-9"
POLICY = PasswordPolicy(
    minimum_length=12, require_uppercase=True, require_lowercase=True, require_numbers=True
)


@dataclass(frozen=True)
class Rpc:
    cognito_operation: str  # the service model's name
    method: str  # the boto3 method the gateway calls
    request: Message
    success: dict[str, Any]  # a success response of Cognito, for "success" rows


DELIVERY = {
    "CodeDeliveryDetails": {
        "Destination": "a***@e***.com",
        "DeliveryMedium": "EMAIL",
        "AttributeName": "email",
    }
}
RPCS: dict[str, Rpc] = {
    "SignUp": Rpc(
        "SignUp",
        "sign_up",
        pb.SignUpRequest(email=EMAIL, password=PASSWORD),
        {"UserConfirmed": False, "UserSub": "0" * 36, **DELIVERY},
    ),
    "Confirm": Rpc(
        "ConfirmSignUp", "confirm_sign_up", pb.ConfirmRequest(email=EMAIL, code="123456"), {}
    ),
    "ResendConfirmationCode": Rpc(
        "ResendConfirmationCode",
        "resend_confirmation_code",
        pb.ResendConfirmationCodeRequest(email=EMAIL),
        DELIVERY,
    ),
    "SignIn": Rpc(
        "InitiateAuth", "initiate_auth", pb.SignInRequest(email=EMAIL, password=PASSWORD), {}
    ),
    "ForgotPassword": Rpc(
        "ForgotPassword", "forgot_password", pb.ForgotPasswordRequest(email=EMAIL), DELIVERY
    ),
    "ConfirmReset": Rpc(
        "ConfirmForgotPassword",
        "confirm_forgot_password",
        pb.ConfirmResetRequest(email=EMAIL, code="123456", new_password=PASSWORD),
        {},
    ),
}

_ROW = re.compile(r"\| (\w+) \| `(\w+)` \| (.+?) \| (.+?) \|")


@dataclass(frozen=True)
class Row:
    rpc: str
    error: str
    other: str
    answer: str

    @property
    def id(self) -> str:
        return f"{self.rpc}-{self.error}"


def rows() -> list[Row]:
    found = [Row(*m.groups()) for m in map(_ROW.fullmatch, TABLE.read_text().splitlines()) if m]
    assert found, "docs/cognito-errors.md has no table rows"
    return found


ROWS = rows()


@pytest.fixture
def cognito() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cognito-idp", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def run(client: Any, rpc: Rpc) -> tuple[str, str, bytes]:
    """The whole answer of the handler: status, reason, serialized body or status."""
    offload = Offload(1)
    gateway = CognitoGateway(client, client_id="client123", sleep=lambda _s: None)
    servicer = IdentityServicer(gateway, cast(Any, None), offload, password_policy=POLICY)
    handler = getattr(servicer, rpc.request.DESCRIPTOR.name.removesuffix("Request"))
    try:
        response = asyncio.run(handler(rpc.request, None))
    except IdentityError as exc:
        return exc.code.name, exc.reason, exc.to_status().SerializeToString(deterministic=True)
    finally:
        offload.close()
    return "OK", "", response.SerializeToString(deterministic=True)


def stub(stubber: Stubber, rpc: Rpc, answer: str) -> None:
    if answer.startswith("success"):
        stubber.add_response(rpc.method, rpc.success)
        return
    # Throttling is retried by the gateway: Cognito throttles every attempt.
    attempts = MAX_ATTEMPTS if answer == "TooManyRequestsException" else 1
    for _ in range(attempts):
        stubber.add_client_error(rpc.method, service_error_code=answer, service_message="x")


def test_the_table_lists_exactly_botocores_errors_for_each_rpc() -> None:
    model = botocore.session.get_session().get_service_model("cognito-idp")
    for name, rpc in RPCS.items():
        declared = {e.name for e in model.operation_model(rpc.cognito_operation).error_shapes}
        documented = [row.error for row in ROWS if row.rpc == name]
        assert sorted(documented) == sorted(declared), name
    assert {row.rpc for row in ROWS} == set(RPCS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_known_and_unknown_accounts_get_the_same_bytes(
    cognito: tuple[Any, Stubber], row: Row
) -> None:
    client, stubber = cognito
    rpc = RPCS[row.rpc]
    stub(stubber, rpc, row.error)
    this = run(client, rpc)

    expected = tuple(re.findall(r"`(\w+)`", row.answer))
    assert this[:2] == (("OK", "") if expected == ("OK",) else expected)
    if row.other.startswith("—"):
        return  # needs the account's own password: only its owner gets this far
    other = row.error if row.other == "the same error" else row.other
    if other.startswith("`"):
        other = other.strip("`")
    stub(stubber, rpc, other)
    assert run(client, rpc) == this


@pytest.mark.parametrize("rpc_name", ["SignUp", "ConfirmReset"])
@pytest.mark.parametrize(
    "password", ["ÉÉÉÉÉÉabcdef1", "ABCDEFGHIJKß1", "Abcdefghijk²", "short", "Abcdef1", "x" * 300]
)
def test_a_password_cognito_could_refuse_never_reaches_cognito(
    cognito: tuple[Any, Stubber], rpc_name: str, password: str
) -> None:
    """Nothing is stubbed: a Cognito call would fail the test (StubAssertionError)."""
    client, _ = cognito
    base = RPCS[rpc_name]
    field = "password" if rpc_name == "SignUp" else "new_password"
    request = type(base.request)()
    request.CopyFrom(base.request)
    setattr(request, field, password)
    status, reason, _ = run(client, Rpc(base.cognito_operation, base.method, request, {}))
    assert (status, reason) == ("INVALID_ARGUMENT", "INVALID_PASSWORD")


@pytest.mark.parametrize("rpc_name", ["ForgotPassword", "ResendConfirmationCode"])
def test_a_hidden_limit_is_answered_ok_but_audited_with_the_masked_email(
    cognito: tuple[Any, Stubber], caplog: pytest.LogCaptureFixture, rpc_name: str
) -> None:
    client, stubber = cognito
    rpc = RPCS[rpc_name]
    stub(stubber, rpc, "LimitExceededException")
    with caplog.at_level("INFO", logger="identity_server.audit"):
        status, _, _ = run(client, rpc)
    assert status == "OK"
    [line] = [r for r in caplog.records if r.name == "identity_server.audit"]
    assert vars(line)["email"] == "a***@e***"
    assert vars(line)["outcome"] == "success"
    assert vars(line)["cognito_error"] == "LimitExceededException"
    assert EMAIL not in caplog.text

"""IdentityPool against a stubbed cognito-identity: the calls it makes and how it maps answers."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from identity_server._errors import IdentityError, Internal, TokenInvalid, Unavailable
from identity_server.cognito.gateway import Challenge, UserProfile
from identity_server.cognito.identity_pool import IdentityPool, provider_name

POOL = "eu-west-1:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
IDENTITY = "eu-west-1:11111111-2222-3333-4444-555555555555"
LOGINS = {"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123": "id-token"}


@pytest.fixture
def stubbed() -> Iterator[tuple[IdentityPool, Stubber]]:
    client = boto3.client(
        "cognito-identity",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with Stubber(client) as stubber:
        yield (
            IdentityPool(client, identity_pool_id=POOL, provider_name=provider_name(ISSUER)),
            stubber,
        )
        stubber.assert_no_pending_responses()


def test_logs_in_with_the_id_token_under_the_user_pools_provider_name(
    stubbed: tuple[IdentityPool, Stubber],
) -> None:
    pool, stubber = stubbed
    expiration = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)
    stubber.add_response(
        "get_id", {"IdentityId": IDENTITY}, {"IdentityPoolId": POOL, "Logins": LOGINS}
    )
    stubber.add_response(
        "get_credentials_for_identity",
        {
            "IdentityId": IDENTITY,
            "Credentials": {
                "AccessKeyId": "ASIA1",
                "SecretKey": "secret-1",
                "SessionToken": "session-1",
                "Expiration": expiration,
            },
        },
        {"IdentityId": IDENTITY, "Logins": LOGINS},
    )
    issued = pool.credentials("id-token")
    assert (issued.identity_id, issued.access_key_id, issued.expiration) == (
        IDENTITY,
        "ASIA1",
        expiration,
    )
    assert "secret-1" not in repr(issued)
    assert "session-1" not in repr(issued)


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        ("NotAuthorizedException", TokenInvalid, "ID_TOKEN_REJECTED"),
        ("InvalidParameterException", TokenInvalid, "ID_TOKEN_REJECTED"),
        ("ExternalServiceException", Unavailable, "UPSTREAM_UNAVAILABLE"),
        ("ResourceNotFoundException", Internal, "INTERNAL"),
        ("InvalidIdentityPoolConfigurationException", Internal, "INTERNAL"),
        # The pool's quota, not the user's attempts: never ATTEMPT_LIMIT_EXCEEDED.
        ("LimitExceededException", Internal, "INTERNAL"),
    ],
)
def test_cognito_identity_errors_become_domain_errors(
    stubbed: tuple[IdentityPool, Stubber],
    code: str,
    error: type[IdentityError],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool, stubber = stubbed
    stubber.add_client_error("get_id", service_error_code=code, service_message="botocore text")
    with caplog.at_level(logging.ERROR, "identity_server.cognito"), pytest.raises(error) as caught:
        pool.credentials("id-token")
    assert caught.value.reason == reason
    assert "botocore" not in caught.value.message
    if error is Internal:  # the service's own configuration: an operator must see it
        assert any(code in str(getattr(r, "error", "")) for r in caplog.records)


def test_an_answer_without_credentials_is_internal(stubbed: tuple[IdentityPool, Stubber]) -> None:
    pool, stubber = stubbed
    stubber.add_response("get_id", {"IdentityId": IDENTITY})
    stubber.add_response(
        "get_credentials_for_identity",
        {"IdentityId": IDENTITY, "Credentials": {"AccessKeyId": "ASIA1"}},
    )
    with pytest.raises(Internal):
        pool.credentials("id-token")


def test_gateway_results_keep_personal_data_out_of_repr() -> None:
    challenge = Challenge(
        "NEW_PASSWORD_REQUIRED", "session-1", {"userAttributes": '{"email":"ada@example.com"}'}
    )
    profile = UserProfile("sub-1", {"email": "ada@example.com"}, ())
    for value in (challenge, profile):
        assert "ada@example.com" not in repr(value)
        assert "session-1" not in repr(value)

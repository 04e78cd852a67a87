"""The Lambda trigger handlers on Cognito's documented events, without the local stack."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from identity_triggers import post_confirmation, pre_sign_up

# The PreSignUp event as Cognito's developer guide shows it.
PRE_SIGN_UP_EVENT: dict[str, Any] = {
    "version": "1",
    "region": "us-east-1",
    "userPoolId": "us-east-1_EXAMPLE",
    "userName": "4d7f9a6e-0000-4000-8000-000000000001",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client-id"},
    "triggerSource": "PreSignUp_SignUp",
    "request": {
        "userAttributes": {"email": "ada@Example.com"},
        "validationData": None,
    },
    "response": {"autoConfirmUser": False, "autoVerifyEmail": False, "autoVerifyPhone": False},
}

POST_CONFIRMATION_EVENT: dict[str, Any] = {
    "version": "1",
    "region": "us-east-1",
    "userPoolId": "us-east-1_EXAMPLE",
    "userName": "4d7f9a6e-0000-4000-8000-000000000001",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client-id"},
    "triggerSource": "PostConfirmation_ConfirmSignUp",
    "request": {
        "userAttributes": {
            "sub": "4d7f9a6e-0000-4000-8000-000000000001",
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "ada@example.com",
        }
    },
    "response": {},
}


def event(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copied = copy.deepcopy(base)
    copied.update(changes)
    return copied


def test_pre_sign_up_changes_nothing_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pre_sign_up.ALLOWED, raising=False)
    monkeypatch.delenv(pre_sign_up.AUTO_CONFIRM, raising=False)
    answer = pre_sign_up.handler(event(PRE_SIGN_UP_EVENT), None)
    assert answer == PRE_SIGN_UP_EVENT


def test_pre_sign_up_refuses_domain_outside_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pre_sign_up.ALLOWED, "corp.example, partner.example")
    with pytest.raises(pre_sign_up.SignUpRefused):
        pre_sign_up.handler(event(PRE_SIGN_UP_EVENT), None)


def test_pre_sign_up_allow_list_ignores_case_but_not_subdomains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(pre_sign_up.ALLOWED, "EXAMPLE.com")
    pre_sign_up.handler(event(PRE_SIGN_UP_EVENT), None)
    sub = event(PRE_SIGN_UP_EVENT, request={"userAttributes": {"email": "a@mail.example.com"}})
    with pytest.raises(pre_sign_up.SignUpRefused):
        pre_sign_up.handler(sub, None)


def test_pre_sign_up_auto_confirms_trusted_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pre_sign_up.AUTO_CONFIRM, "example.com")
    answer = pre_sign_up.handler(event(PRE_SIGN_UP_EVENT), None)
    assert answer["response"]["autoConfirmUser"] is True
    assert answer["response"]["autoVerifyEmail"] is True
    assert answer["response"]["autoVerifyPhone"] is False


def test_pre_sign_up_does_not_auto_confirm_admin_created_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(pre_sign_up.AUTO_CONFIRM, "example.com")
    admin = event(PRE_SIGN_UP_EVENT, triggerSource="PreSignUp_AdminCreateUser")
    assert pre_sign_up.handler(admin, None)["response"]["autoConfirmUser"] is False


def stubbed_cognito(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("cognito-idp", region_name="us-east-1")
    stubber = Stubber(client)
    monkeypatch.setattr(post_confirmation, "_cognito", lambda region: client)
    return stubber


def test_post_confirmation_adds_user_to_default_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(post_confirmation.DEFAULT_GROUP, "users")
    stubber = stubbed_cognito(monkeypatch)
    stubber.add_response(
        "admin_add_user_to_group",
        {},
        {
            "UserPoolId": "us-east-1_EXAMPLE",
            "Username": POST_CONFIRMATION_EVENT["userName"],
            "GroupName": "users",
        },
    )
    with stubber:
        answer = post_confirmation.handler(event(POST_CONFIRMATION_EVENT), None)
    stubber.assert_no_pending_responses()
    assert answer == POST_CONFIRMATION_EVENT


@pytest.mark.parametrize(
    ("group", "source"),
    [("", "PostConfirmation_ConfirmSignUp"), ("users", "PostConfirmation_ConfirmForgotPassword")],
)
def test_post_confirmation_leaves_groups_alone(
    monkeypatch: pytest.MonkeyPatch, group: str, source: str
) -> None:
    monkeypatch.setenv(post_confirmation.DEFAULT_GROUP, group)
    stubber = stubbed_cognito(monkeypatch)
    with stubber:  # no response queued: any call would fail
        post_confirmation.handler(event(POST_CONFIRMATION_EVENT, triggerSource=source), None)


def test_post_confirmation_error_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(post_confirmation.DEFAULT_GROUP, "missing")
    stubber = stubbed_cognito(monkeypatch)
    stubber.add_client_error("admin_add_user_to_group", "ResourceNotFoundException")
    with stubber, pytest.raises(Exception, match="ResourceNotFound"):
        post_confirmation.handler(event(POST_CONFIRMATION_EVENT), None)


EXTERNAL_EVENT: dict[str, Any] = {
    **PRE_SIGN_UP_EVENT,
    "userName": "Google_112233445566778899001",
    "triggerSource": "PreSignUp_ExternalProvider",
    "request": {
        "userAttributes": {
            "email": "ada@example.com",
            "email_verified": "true",
            "name": "Ada",
            "cognito:email_alias": "",
        },
        "validationData": {},
    },
}


def stubbed_pre_sign_up(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("cognito-idp", region_name="us-east-1")
    monkeypatch.setattr(pre_sign_up, "_cognito", lambda region: client)
    return Stubber(client)


def _user(
    username: str, status: str, *, verified: str = "true", identities: str = ""
) -> dict[str, Any]:
    attributes = [
        {"Name": "email", "Value": "ada@example.com"},
        {"Name": "email_verified", "Value": verified},
    ]
    if identities:
        attributes.append({"Name": "identities", "Value": identities})
    return {"Username": username, "UserStatus": status, "Enabled": True, "Attributes": attributes}


LIST_ADA = {"UserPoolId": "us-east-1_EXAMPLE", "Filter": 'email = "ada@example.com"', "Limit": 10}


def test_pre_sign_up_never_links_to_an_account_whose_email_is_unverified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A confirmed account that changed its e-mail to someone else's address and
    # never confirmed it must not receive that person's Google identity.
    stubber = stubbed_pre_sign_up(monkeypatch)
    stubber.add_response(
        "list_users", {"Users": [_user("sub-of-mallory", "CONFIRMED", verified="false")]}, LIST_ADA
    )
    with stubber:  # no link call is stubbed: one would fail
        pre_sign_up.handler(event(EXTERNAL_EVENT), None)
    stubber.assert_no_pending_responses()


def test_pre_sign_up_does_not_link_an_identity_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    stubber = stubbed_pre_sign_up(monkeypatch)
    linked = '[{"userId":"112233445566778899001","providerName":"Google","providerType":"Google"}]'
    stubber.add_response(
        "list_users", {"Users": [_user("sub-of-ada", "CONFIRMED", identities=linked)]}, LIST_ADA
    )
    with stubber:  # no link call is stubbed: one would fail
        assert pre_sign_up.link_to_existing_account(event(EXTERNAL_EVENT)) == "sub-of-ada"
    stubber.assert_no_pending_responses()


def test_pre_sign_up_links_a_verified_google_email_to_the_confirmed_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stubber = stubbed_pre_sign_up(monkeypatch)
    stubber.add_response(
        "list_users",
        {"Users": [_user("Google_999", "EXTERNAL_PROVIDER"), _user("sub-of-ada", "CONFIRMED")]},
        {"UserPoolId": "us-east-1_EXAMPLE", "Filter": 'email = "ada@example.com"', "Limit": 10},
    )
    stubber.add_response(
        "admin_link_provider_for_user",
        {},
        {
            "UserPoolId": "us-east-1_EXAMPLE",
            "DestinationUser": {"ProviderName": "Cognito", "ProviderAttributeValue": "sub-of-ada"},
            "SourceUser": {
                "ProviderName": "Google",
                "ProviderAttributeName": "Cognito_Subject",
                "ProviderAttributeValue": "112233445566778899001",
            },
        },
    )
    with stubber:
        answer = pre_sign_up.handler(event(EXTERNAL_EVENT), None)
    stubber.assert_no_pending_responses()
    assert answer["response"] == PRE_SIGN_UP_EVENT["response"]


def test_pre_sign_up_links_nothing_for_an_unverified_email(monkeypatch: pytest.MonkeyPatch) -> None:
    stubber = stubbed_pre_sign_up(monkeypatch)
    unverified = event(EXTERNAL_EVENT)
    unverified["request"]["userAttributes"]["email_verified"] = "false"
    with stubber:  # any call would fail: nothing is stubbed
        pre_sign_up.handler(unverified, None)


def test_pre_sign_up_links_nothing_without_a_confirmed_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stubber = stubbed_pre_sign_up(monkeypatch)
    stubber.add_response(
        "list_users",
        {"Users": [_user("sub-pending", "UNCONFIRMED")]},
        {"UserPoolId": "us-east-1_EXAMPLE", "Filter": 'email = "ada@example.com"', "Limit": 10},
    )
    with stubber:
        pre_sign_up.handler(event(EXTERNAL_EVENT), None)
    stubber.assert_no_pending_responses()


def test_pre_sign_up_never_puts_quotes_into_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    stubber = stubbed_pre_sign_up(monkeypatch)
    hostile = event(EXTERNAL_EVENT)
    hostile["request"]["userAttributes"]["email"] = 'a" or email ^= "@example.com'
    with stubber:
        pre_sign_up.handler(hostile, None)

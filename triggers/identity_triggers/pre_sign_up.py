"""PreSignUp: an e-mail-domain allow-list, auto-confirm, and linking federated sign-ups.

Environment (both off when unset or empty):

- `ALLOWED_EMAIL_DOMAINS`: comma-separated domains; a sign-up with an e-mail
  outside them is refused (Cognito answers UserLambdaValidationException).
- `AUTO_CONFIRM_DOMAINS`: comma-separated domains whose sign-ups are confirmed
  and their e-mail marked verified without a code (only for
  `PreSignUp_SignUp`; admin-created and federated users are left alone).
  Only for domains whose mailboxes you control: such an e-mail counts as
  verified, and account linking trusts verified e-mails.

Domains compare exactly (case-insensitive): `example.com` does not admit
`mail.example.com`.

Account linking (`PreSignUp_ExternalProvider`, a first federated sign-in):
when the provider says the e-mail is verified (`email_verified` mapped from
Google's claim) and a confirmed, enabled e-mail/password account has that
e-mail verified too, the provider identity is linked to it with
AdminLinkProviderForUser, so the person keeps one `sub` and one set of groups.
An account whose e-mail is not verified (changed and never confirmed) is never
a target: its holder has not shown the address is theirs. Linking is
idempotent (an identity already linked to that account is not linked again).
Cognito then fails that one sign-in ("Already found an entry for username Google_..."); the service
answers it with ABORTED FEDERATED_ACCOUNT_LINKED and the next sign-in
succeeds as the linked account. Unverified e-mails are never linked.

The function's role needs `cognito-idp:ListUsers` and
`cognito-idp:AdminLinkProviderForUser` on the pool.
"""

from __future__ import annotations

import json
import os
from typing import Any

from identity_triggers._config import cognito as _cognito
from identity_triggers._config import domains, email_domain

ALLOWED = "ALLOWED_EMAIL_DOMAINS"
AUTO_CONFIRM = "AUTO_CONFIRM_DOMAINS"


# Cognito's provider names, by the lower-cased prefix of a federated username.
_PROVIDERS = {
    "google": "Google",
    "facebook": "Facebook",
    "loginwithamazon": "LoginWithAmazon",
    "signinwithapple": "SignInWithApple",
}


class SignUpRefused(Exception):
    """Raised to make Cognito refuse the sign-up."""


def link_to_existing_account(event: dict[str, Any]) -> str | None:
    """Link a federated identity to the confirmed account with its verified e-mail.

    Returns the account's username (linked now or before), or None.
    """
    attributes = event.get("request", {}).get("userAttributes", {}) or {}
    email = str(attributes.get("email", ""))
    if str(attributes.get("email_verified", "")).lower() != "true":
        return None
    if not email or len(email) > 254 or any(c in email for c in '"\\'):
        return None
    prefix, sep, subject = str(event.get("userName", "")).partition("_")
    if not sep or not subject:
        return None
    provider = _PROVIDERS.get(prefix.lower(), prefix)
    client = _cognito(str(event["region"]))
    pool_id = event["userPoolId"]
    users = client.list_users(UserPoolId=pool_id, Filter=f'email = "{email}"', Limit=10)
    for user in users.get("Users", []):
        if user.get("UserStatus") != "CONFIRMED" or not user.get("Enabled", True):
            continue
        attributes = {a["Name"]: a.get("Value", "") for a in user.get("Attributes", [])}
        if attributes.get("email_verified", "").lower() != "true":
            continue
        if _linked(attributes.get("identities", ""), provider, subject):
            return str(user["Username"])
        client.admin_link_provider_for_user(
            UserPoolId=pool_id,
            DestinationUser={
                "ProviderName": "Cognito",
                "ProviderAttributeValue": user["Username"],
            },
            SourceUser={
                "ProviderName": provider,
                "ProviderAttributeName": "Cognito_Subject",
                "ProviderAttributeValue": subject,
            },
        )
        return str(user["Username"])
    return None


def _linked(identities: str, provider: str, subject: str) -> bool:
    """Whether the account's `identities` attribute already holds this provider identity."""
    try:
        linked = json.loads(identities) if identities else []
    except ValueError:
        return False
    if not isinstance(linked, list):
        return False
    return any(
        isinstance(i, dict) and i.get("providerName") == provider and i.get("userId") == subject
        for i in linked
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Refuse domains outside the allow-list; auto-confirm trusted domains."""
    attributes = event.get("request", {}).get("userAttributes", {}) or {}
    domain = email_domain(str(attributes.get("email", "")))
    allowed = domains(os.environ, ALLOWED)
    if allowed and domain not in allowed:
        raise SignUpRefused("e-mail domain not allowed")
    response = event.setdefault("response", {})
    if event.get("triggerSource") == "PreSignUp_ExternalProvider":
        link_to_existing_account(event)
    if event.get("triggerSource") == "PreSignUp_SignUp" and domain:
        trusted = domains(os.environ, AUTO_CONFIRM)
        if domain in trusted:
            response["autoConfirmUser"] = True
            response["autoVerifyEmail"] = True
    return event

"""PreSignUp: an e-mail-domain allow-list and auto-confirm for trusted domains.

Environment (both off when unset or empty):

- `ALLOWED_EMAIL_DOMAINS`: comma-separated domains; a sign-up with an e-mail
  outside them is refused (Cognito answers UserLambdaValidationException).
- `AUTO_CONFIRM_DOMAINS`: comma-separated domains whose sign-ups are confirmed
  and their e-mail marked verified without a code (only for
  `PreSignUp_SignUp`; admin-created and federated users are left alone).

Domains compare exactly (case-insensitive): `example.com` does not admit
`mail.example.com`.
"""

from __future__ import annotations

import os
from typing import Any

from identity_triggers._config import domains, email_domain

ALLOWED = "ALLOWED_EMAIL_DOMAINS"
AUTO_CONFIRM = "AUTO_CONFIRM_DOMAINS"


class SignUpRefused(Exception):
    """Raised to make Cognito refuse the sign-up."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Refuse domains outside the allow-list; auto-confirm trusted domains."""
    attributes = event.get("request", {}).get("userAttributes", {}) or {}
    domain = email_domain(str(attributes.get("email", "")))
    allowed = domains(os.environ, ALLOWED)
    if allowed and domain not in allowed:
        raise SignUpRefused("e-mail domain not allowed")
    response = event.setdefault("response", {})
    if event.get("triggerSource") == "PreSignUp_SignUp" and domain:
        trusted = domains(os.environ, AUTO_CONFIRM)
        if domain in trusted:
            response["autoConfirmUser"] = True
            response["autoVerifyEmail"] = True
    return event

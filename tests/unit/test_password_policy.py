"""The pool's password policy, checked locally so the answer never depends on the account."""

from __future__ import annotations

import pytest

from identity_server.cognito.password_policy import PasswordPolicy

POLICY = PasswordPolicy.from_cognito(
    {
        "MinimumLength": 12,
        "RequireUppercase": True,
        "RequireLowercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
    }
)


def test_a_password_meeting_every_rule_passes() -> None:
    assert POLICY.check("Correct-Horse-9", "password") == []


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("Short-9a", "at least 12 characters"),
        ("correct-horse-9", "an upper-case letter"),
        ("CORRECT-HORSE-9", "a lower-case letter"),
        ("Correct-Horse-x", "a digit"),
        ("CorrectHorse99", "a symbol"),
    ],
)
def test_each_missing_rule_is_named_without_the_password(password: str, missing: str) -> None:
    [violation] = POLICY.check(password, "new_password")
    assert violation.field == "new_password"
    assert missing in violation.description
    assert password not in violation.description


def test_defaults_match_cognitos_when_the_pool_says_nothing() -> None:
    policy = PasswordPolicy.from_cognito({})
    assert policy.minimum_length == 8
    assert policy.check("abcdefgh", "password") == []

"""The pool's password policy, checked locally so the answer never depends on the account.

The check must be exactly Cognito's: any password it lets through that Cognito
would refuse lets Cognito decide, and Cognito decides differently for known
and unknown accounts.
"""

from __future__ import annotations

import pytest

from identity_server.cognito.password_policy import MAXIMUM_LENGTH, PasswordPolicy

POLICY = PasswordPolicy.from_cognito(
    {
        "MinimumLength": 12,
        "RequireUppercase": True,
        "RequireLowercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
    }
)
# The local pool's policy: no symbol required.
NO_SYMBOLS = PasswordPolicy(
    minimum_length=12, require_uppercase=True, require_lowercase=True, require_numbers=True
)


def test_a_password_meeting_every_rule_passes() -> None:
    assert POLICY.check("Correct-Horse-9", "password") == []


@pytest.mark.parametrize(
    "password",
    [
        "Short-9a",  # too short
        "correct-horse-9",  # no upper-case letter
        "CORRECT-HORSE-9",  # no lower-case letter
        "Correct-Horse-x",  # no digit
        "CorrectHorse99",  # no symbol
    ],
)
def test_each_missing_rule_gets_the_one_policy_message(password: str) -> None:
    [violation] = POLICY.check(password, "new_password")
    assert violation.field == "new_password"
    assert violation.description == POLICY.description
    assert password not in violation.description


@pytest.mark.parametrize(
    "password",
    [
        "ÉÉÉÉÉÉabcdef1",  # É is upper-case for Python, not a Basic Latin letter for Cognito
        "ABCDEFGHIJKß1",  # ß is lower-case for Python
        "Abcdefghijk²",  # ² is a digit for Python
        "Abcdefghijk\u0661",  # Arabic-Indic digit one
        "Abcdefghijk1€",  # an allowed password plus a character Cognito does not allow
        "Abcdefghij\t1k",  # a tab is not Cognito's space
        "Abcdefghij\u00a01k",  # nor is a no-break space
        "Abcdefghijk1\u200b",  # nor a zero-width space
    ],
)
def test_characters_outside_cognitos_classes_are_refused(password: str) -> None:
    """The issue's examples pass Python's isupper/islower/isdigit but fail Cognito."""
    assert NO_SYMBOLS.check(password, "password") == [NO_SYMBOLS.check("x", "password")[0]]


@pytest.mark.parametrize("symbol", list("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-"))
def test_each_of_cognitos_symbols_counts_as_a_symbol(symbol: str) -> None:
    assert POLICY.check(f"Correcthorse9{symbol}", "password") == []


def test_an_inner_space_is_a_symbol_but_a_leading_or_trailing_one_is_refused() -> None:
    assert POLICY.check("Correct horse9", "password") == []
    assert POLICY.check(" Correcthorse9", "password") != []
    assert POLICY.check("Correcthorse9 ", "password") != []


def test_cognitos_maximum_length_is_enforced_whatever_the_pool_minimum() -> None:
    at_limit = "Aa1-" + "x" * (MAXIMUM_LENGTH - 4)
    assert POLICY.check(at_limit, "password") == []
    assert POLICY.check(at_limit + "x", "password") != []


def test_the_message_states_the_whole_policy_and_is_the_same_for_every_failure() -> None:
    descriptions = {
        v.description
        for p in ("short", "Abcdef1", "x" * 300, "abcdefghijkl")
        for v in NO_SYMBOLS.check(p, "password")
    }
    assert descriptions == {NO_SYMBOLS.description}
    assert "12 to 256 characters" in NO_SYMBOLS.description
    assert "an upper-case letter (A-Z)" in NO_SYMBOLS.description
    assert "symbol or an inner space" not in NO_SYMBOLS.description
    assert "a symbol or an inner space" in POLICY.description


def test_defaults_match_cognitos_when_the_pool_says_nothing() -> None:
    policy = PasswordPolicy.from_cognito({})
    assert policy.minimum_length == 8
    assert policy.check("abcdefgh", "password") == []
    assert policy.check("", "password") != []

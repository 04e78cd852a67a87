"""Sign-up attributes are checked as Cognito checks them, before Cognito sees them.

Cognito refuses a bad attribute only for a new e-mail (an existing one gets
UsernameExistsException first), so a format left to Cognito would tell the two
apart: `phone_number: "x"` was OK for an existing e-mail, INVALID_ARGUMENT for a
new one.
"""

from __future__ import annotations

import pytest

from identity_server.api import validation as check


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("phone_number", "+14155550100"),
        ("phone_number", "+442071838750"),
        ("birthdate", "1990-02-28"),
        ("birthdate", "2000-02-29"),
        ("website", "https://example.com/me?x=1"),
        ("picture", "http://cdn.example.org:8080/a.png"),
        ("profile", "https://example.com"),
        ("locale", "en-GB"),
        ("locale", "fr"),
        ("zoneinfo", "Europe/Paris"),
        ("zoneinfo", "America/Argentina/Buenos_Aires"),
        ("name", "Zoë 😀"),
        ("gender", "anything at all"),
    ],
)
def test_well_formed_standard_attributes_pass(name: str, value: str) -> None:
    assert check.attributes({name: value}) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("phone_number", "x"),
        ("phone_number", "14155550100"),  # no +
        ("phone_number", "+1 415 555 0100"),  # spaces
        ("phone_number", "+0123456"),  # no country code starts with 0
        ("phone_number", "+1234567890123456"),  # 16 digits
        ("phone_number", "+١٢٣٤٥٦٧"),  # digits, but not ASCII ones
        ("birthdate", "1990-02-30"),
        ("birthdate", "28/02/1990"),
        ("birthdate", "1990"),
        ("website", "example.com"),
        ("website", "javascript:alert(1)"),
        ("picture", "https://exa mple.com/a.png"),
        ("locale", "english please"),
        ("zoneinfo", "../../etc/passwd"),
    ],
)
def test_malformed_standard_attributes_are_refused_naming_the_attribute(
    name: str, value: str
) -> None:
    [violation] = check.attributes({name: value})
    assert violation.field == f"attributes[{name!r}]"
    assert value not in violation.description


def test_length_counts_as_cognito_counts_it() -> None:
    """2,048 characters as Java counts them: an emoji is two."""
    assert check.attributes({"name": "a" * 2048}) == []
    assert check.attributes({"name": "😀" * 1024}) == []
    [violation] = check.attributes({"name": "😀" * 1025})
    assert "at most 2048" in violation.description

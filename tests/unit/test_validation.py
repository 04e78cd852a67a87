"""Input bounds, checked before any Cognito call."""

from __future__ import annotations

import pytest

from identity_server._errors import InvalidArgument
from identity_server.api import validation as check


@pytest.mark.parametrize(
    "email", ["ada@example.com", "a.b+tag@sub.example.co.uk", "o'neil@example.org", "x@y.io"]
)
def test_accepts_valid_emails(email: str) -> None:
    assert check.email(email) == []


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.com",
        "ada@",
        "ada@example",
        "ada@@example.com",
        "ada @example.com",
        "ada@example.com\n",
        ".ada@example.com",
        "ada.@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        "ada@exa_mple.com",
    ],
)
def test_rejects_invalid_emails(email: str) -> None:
    assert [v.field for v in check.email(email)] == ["email"]


def test_passwords_are_never_trimmed_but_new_ones_may_not_have_edge_spaces() -> None:
    assert check.password(" secret with spaces ") == []  # sign-in: exactly as given
    assert check.password(" Correct-Horse-9", new=True) != []
    assert check.password("Correct-Horse-9 ", new=True) != []
    assert check.password("Correct Horse 9", new=True) == []


@pytest.mark.parametrize(("length", "ok"), [(0, False), (1, True), (256, True), (257, False)])
def test_password_length_bounds(length: int, ok: bool) -> None:
    assert (check.password("x" * length) == []) is ok


def test_new_password_has_a_minimum_length() -> None:
    assert check.password("Ab1-x", new=True) != []
    assert check.password("Ab1-xy", new=True) == []


@pytest.mark.parametrize("code", ["123456", "000000", "987654"])
def test_accepts_codes(code: str) -> None:
    assert check.code(code) == []


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12 34",
        "12\n34",
        "x" * 65,
        "1234é",
        "12;34",
        "12345",
        "1234567",
        "moto-confirmation-code:123456",
        "١٢٣٤٥٦",
    ],
)
def test_rejects_codes(code: str) -> None:
    assert check.code(code) != []


def test_tokens_are_bounded_printable_ascii() -> None:
    assert check.opaque("a.b.c", "token") == []
    assert check.opaque("a" * 8193, "token") != []
    assert check.opaque("a b", "token") != []
    assert check.opaque("", "refresh_token", required=False) == []


def test_only_allowed_attributes_within_bounds() -> None:
    assert check.attributes({"name": "Ada", "locale": "en"}) == []
    assert [v.field for v in check.attributes({"email_verified": "true"})] == [
        "attributes['email_verified']"
    ]
    assert check.attributes({"custom:role": "admin"}) != []
    assert check.attributes({"name": "x" * 2049}) != []
    assert check.attributes({"name": "a\x00b"}) != []
    assert check.attributes({f"k{i}": "v" for i in range(17)}) != []


def test_ensure_names_every_bad_field_without_echoing_values() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check.ensure(check.email("not-an-email"), check.password(""))
    fields = [v.field for v in caught.value.violations]
    assert fields == ["email", "password"]
    assert "not-an-email" not in caught.value.to_status().SerializeToString().decode("latin-1")

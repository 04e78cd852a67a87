"""Request validation, run before any Cognito call.

Each check returns the violations it finds; `ensure` raises one InvalidArgument
naming every bad field. Passwords are bounded but never trimmed or normalised.
Descriptions are fixed text and never echo the value.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping

from identity_server._errors import FieldViolation, InvalidArgument

MAX_EMAIL = 254
MAX_PASSWORD = 256
MIN_NEW_PASSWORD = 6
MAX_CODE = 64
MAX_TOKEN = 8192
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_VALUE = 2048

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_CODE = re.compile(r"[0-9]{6}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPAQUE = re.compile(r"[\x21-\x7e]+")

# Standard attributes a caller may set at sign-up. `email` comes from its own
# field; `*_verified` and `sub` are the pool's to set, never the caller's.
SIGN_UP_ATTRIBUTES = frozenset(
    {
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "phone_number",
        "address",
    }
)


# Standard attributes with a format (OpenID Connect's, as Cognito checks them):
# a value Cognito would refuse is refused here first, so that Cognito never
# refuses a new e-mail's sign-up where an existing e-mail's is answered OK.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][\x21-\x7e]*)?")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,4}")
_ZONEINFO = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,3}")


def _is_date(value: str) -> bool:
    if not _DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


_FORMATS: Mapping[str, tuple[Callable[[str], bool], str]] = {
    "phone_number": (
        lambda v: bool(_E164.fullmatch(v)),
        "must be an E.164 number: + and up to 15 digits",
    ),
    "birthdate": (_is_date, "must be a date as YYYY-MM-DD"),
    "profile": (lambda v: bool(_URL.fullmatch(v)), "must be an http or https URL"),
    "picture": (lambda v: bool(_URL.fullmatch(v)), "must be an http or https URL"),
    "website": (lambda v: bool(_URL.fullmatch(v)), "must be an http or https URL"),
    "locale": (lambda v: bool(_LOCALE.fullmatch(v)), "must be a language tag such as en-GB"),
    "zoneinfo": (
        lambda v: len(v) <= 64 and bool(_ZONEINFO.fullmatch(v)),
        "must be a time zone name such as Europe/Paris",
    ),
}


def _utf16_length(value: str) -> int:
    """The length as Cognito counts it (UTF-16 code units, as Java does)."""
    return len(value.encode("utf-16-le")) // 2


def email(value: str, field: str = "email") -> list[FieldViolation]:
    """A syntactically valid address of at most 254 characters."""
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > MAX_EMAIL:
        return [FieldViolation(field, f"must be at most {MAX_EMAIL} characters")]
    local = value.partition("@")[0]
    if not _EMAIL.fullmatch(value) or len(local) > 64:
        return [FieldViolation(field, "is not a valid e-mail address")]
    return []


def password(value: str, field: str = "password", *, new: bool = False) -> list[FieldViolation]:
    """Bounded length; a new password may not start or end with white space."""
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > MAX_PASSWORD:
        return [FieldViolation(field, f"must be at most {MAX_PASSWORD} characters")]
    if new:
        if len(value) < MIN_NEW_PASSWORD:
            return [FieldViolation(field, f"must be at least {MIN_NEW_PASSWORD} characters")]
        if value != value.strip():
            return [FieldViolation(field, "must not start or end with white space")]
    return []


def code(value: str, field: str = "code") -> list[FieldViolation]:
    """Six digits: what Cognito sends (sign-up and reset codes) and what TOTP apps show."""
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > MAX_CODE or not _CODE.fullmatch(value):
        return [FieldViolation(field, "is not a valid code")]
    return []


def opaque(
    value: str, field: str, *, limit: int = MAX_TOKEN, required: bool = True
) -> list[FieldViolation]:
    """Tokens, sessions, usernames: printable ASCII, bounded."""
    if not value:
        return [FieldViolation(field, "is required")] if required else []
    if len(value) > limit:
        return [FieldViolation(field, f"must be at most {limit} characters")]
    if not _OPAQUE.fullmatch(value):
        return [FieldViolation(field, "has characters that are not allowed")]
    return []


def attributes(values: Mapping[str, str], field: str = "attributes") -> list[FieldViolation]:
    """Only allowed standard attributes, few, bounded, without control characters.

    Attributes with a format (phone number, date, URLs, locale, time zone) must
    have it; lengths count as Cognito counts them.
    """
    if len(values) > MAX_ATTRIBUTES:
        return [FieldViolation(field, f"must have at most {MAX_ATTRIBUTES} entries")]
    found: list[FieldViolation] = []
    for name in sorted(values):
        where = f"{field}[{name[:64]!r}]"
        if name not in SIGN_UP_ATTRIBUTES:
            found.append(FieldViolation(where, "is not an attribute that can be set"))
        elif _utf16_length(values[name]) > MAX_ATTRIBUTE_VALUE:
            found.append(FieldViolation(where, f"must be at most {MAX_ATTRIBUTE_VALUE} characters"))
        elif _CONTROL.search(values[name]):
            found.append(FieldViolation(where, "has control characters"))
        elif name in _FORMATS and not _FORMATS[name][0](values[name]):
            found.append(FieldViolation(where, _FORMATS[name][1]))
    return found


def ensure(*checks: Iterable[FieldViolation]) -> None:
    """Raise one InvalidArgument listing every violation, if there are any."""
    violations = [v for check in checks for v in check]
    if violations:
        raise InvalidArgument(violations=violations)


MAX_SESSION = 2048
MAX_DEVICE_NAME = 128
_TOTP_CODE = re.compile(r"[0-9]{6}")


def totp_code(value: str, field: str = "code") -> list[FieldViolation]:
    """A code from an authenticator app (or a text message): six digits."""
    if not value:
        return [FieldViolation(field, "is required")]
    if not _TOTP_CODE.fullmatch(value):
        return [FieldViolation(field, "must be six digits")]
    return []


def device_name(value: str, field: str = "friendly_device_name") -> list[FieldViolation]:
    """An optional, short, printable name for an authenticator."""
    if len(value) > MAX_DEVICE_NAME:
        return [FieldViolation(field, f"must be at most {MAX_DEVICE_NAME} characters")]
    if _CONTROL.search(value):
        return [FieldViolation(field, "has control characters")]
    return []


MIN_SESSION = 20


def session(value: str, field: str = "session", *, required: bool = True) -> list[FieldViolation]:
    """A challenge session as Cognito issues it: printable ASCII, 20 to 2048 characters."""
    found = opaque(value, field, limit=MAX_SESSION, required=required)
    if not found and value and len(value) < MIN_SESSION:
        return [FieldViolation(field, f"must be at least {MIN_SESSION} characters")]
    return found

"""Driving the local hosted UI over HTTP, as a browser would, without following redirects."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, the Location header ('' when none) and the body."""

    status: int
    location: str
    body: str

    def query(self) -> dict[str, str]:
        """The parameters of the Location URL."""
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.location).query))


def http(
    url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """GET (or POST a form to) `url`; redirects are answers, not followed."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Answer(
                response.status, response.headers.get("Location", ""), response.read().decode()
            )
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers.get("Location", ""), error.read().decode())


def google(
    authorize_url: str,
    email: str,
    *,
    name: str = "Ada Lovelace",
    verified: bool = True,
    action: str = "continue",
) -> Answer:
    """Open the authorize URL, fill in the local Google page, submit: the callback redirect."""
    page = http(authorize_url)
    assert page.status == 200, (page.status, page.location, page.body[:200])
    found = re.search(r'name="request_id" value="([^"]+)"', page.body)
    assert found is not None
    base = authorize_url.split("/oauth2/", 1)[0]
    form = {"request_id": found.group(1), "email": email, "name": name, "action": action}
    if verified:
        form["email_verified"] = "true"
    return http(f"{base}/oauth2/google", form)

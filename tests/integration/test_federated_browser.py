"""Google sign-in in a real browser: headless Chromium (Debian's) driven by Selenium.

`make test` installs `chromium` and `chromium-driver` (the Makefile's `browser`
step); where they are missing these tests skip, and the reason is printed
(pytest runs with `-ra`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_server.local.hosted_ui import google_id
from tests.conftest import RunningServer, new_email

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)

pytestmark = pytest.mark.slow


def _missing() -> str:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install Debian's {package} (make browser)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (make install)"
    return ""


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="h13-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _fill_google_page(driver: Any, email: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    google_page = driver.title
    assert "Sign in with Google" in google_page
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "continue").click()
    WebDriverWait(driver, 15).until(lambda d: d.title != google_page)


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def test_google_sign_in_in_chromium_from_start_to_verified_id_token(
    browser: Any, identity_server: RunningServer, stub: pb_grpc.IdentityServiceStub
) -> None:
    demo = identity_server.cognito.demo
    assert demo is not None
    started = stub.StartFederatedSignIn(
        pb.StartFederatedSignInRequest(
            redirect_uri=demo.callback_url, provider=pb.FEDERATED_PROVIDER_GOOGLE
        ),
        timeout=10,
    )
    email = new_email()
    browser.get(started.authorize_url)
    _fill_google_page(browser, email, "Grace Hopper")
    # The browser is back at the callback with the code and the state.
    landed = urllib.parse.urlsplit(browser.current_url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == demo.callback_url
    query = dict(urllib.parse.parse_qsl(landed.query))
    assert set(query) == {"code", "state"}
    done = stub.CompleteFederatedSignIn(
        pb.CompleteFederatedSignInRequest(
            code=query["code"], state=query["state"], transaction=started.transaction
        ),
        timeout=10,
    )
    assert done.provider == pb.FEDERATED_PROVIDER_GOOGLE
    verified = stub.VerifyToken(
        pb.VerifyTokenRequest(token=done.tokens.id_token, token_use=pb.TOKEN_USE_ID), timeout=10
    )
    principal = verified.principal
    assert principal.username == f"Google_{google_id(email)}"
    assert principal.email == email
    assert f"{identity_server.cognito.pool_id}_Google" in principal.groups
    identities = verified.claims.fields["identities"].list_value.values
    assert [i.struct_value.fields["providerName"].string_value for i in identities] == ["Google"]
    assert verified.claims.fields["name"].string_value == "Grace Hopper"


def test_the_local_bff_signs_in_and_out_with_google_in_chromium(
    browser: Any, identity_server: RunningServer
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    demo = identity_server.cognito.demo
    assert demo is not None
    demo.target = identity_server.target
    email = new_email()
    browser.get(demo.url + "/")
    browser.find_element(By.ID, "sign-in").click()
    _fill_google_page(browser, email, "Grace Hopper")
    assert browser.title == "Signed in", (
        _text(browser, "reason") if "failed" in browser.title else ""
    )
    assert _text(browser, "email") == email
    assert _text(browser, "provider") == "Google"
    assert _text(browser, "username") == f"Google_{google_id(email)}"
    # The transaction cookie was httpOnly, Secure and SameSite; the session
    # cookie is too, and neither is readable from the page's script.
    assert browser.execute_script("return document.cookie") == ""
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["sid"]["httpOnly"] is True
    assert cookies["sid"]["secure"] is True
    assert cookies["sid"]["sameSite"] == "Lax"
    assert "federated_tx" not in cookies
    browser.find_element(By.ID, "sign-out").click()
    WebDriverWait(browser, 15).until(lambda driver: driver.title != "Signed in")
    assert browser.title == "Signed out"
    assert urllib.parse.urlsplit(browser.current_url).path == "/signed-out"


def test_a_missing_browser_is_named_in_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    assert _missing() == (
        "/nonexistent/chromium not found: install Debian's chromium (make browser)"
    )

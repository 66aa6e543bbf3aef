"""Sharing the dashboard safely: the login gate (pages/_auth.py) and the loopback defaults.

- In Debian's Chromium (tests/test_e2e_browser.py's ``dashboard``: ``streamlit run app.py`` on
  a free port): with BN_LAB_PASSWORD set, every URL shows only the password field, a wrong
  password says so and shows nothing more, the right one opens the app; without it, the app
  opens directly.
- In AppTest: the same gate from ``password`` in secrets.toml, and the OIDC (``[auth]``) gate.
- Pure helpers: the constant-time comparison, where the password comes from, the providers.
- scripts/run.sh, docker-compose.yml and the Dockerfile: who can reach the port.
"""

from __future__ import annotations

import hmac
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import streamlit as st
from playwright.sync_api import Browser, Page, expect, sync_playwright
from streamlit import config
from streamlit.runtime.secrets import Secrets
from streamlit.testing.v1 import AppTest

from pages import _auth
from pages._auth import (
    GateError,
    configured_password,
    oidc_providers,
    password_matches,
)
from tests.test_app import runner as runner  # a fixture: a JobRunner that starts nothing
from tests.test_e2e_browser import APP_MENU, ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, dashboard

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parent.parent.parent
APP = str(ROOT / "app.py")
PASSWORD = "correct horse battery staple"
# The app's own elements, any of which would mean the gate let something through.
HEADINGS = "[data-testid='stMain'] h1"
MENU = "[data-testid='stSidebarNav'] a"
START = ".st-key-train-start"
PASSWORD_FIELD = ".st-key-login-password input[type='password']"


# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("given", "expected", "match"),
    [
        (PASSWORD, PASSWORD, True),
        ("pässwörd", "pässwörd", True),  # compared as UTF-8 bytes, not ASCII only
        (PASSWORD[:-1] + "X", PASSWORD, False),  # differs in the last character only
        (PASSWORD[:-1], PASSWORD, False),  # a prefix
        (PASSWORD + " ", PASSWORD, False),  # no stripping
        ("", PASSWORD, False),
        (PASSWORD.upper(), PASSWORD, False),
        ("caf\u00e9", "cafe\u0301", False),  # no Unicode normalization: bytes decide
    ],
)
def test_password_matches_only_the_exact_password(given, expected, match):
    assert password_matches(given, expected) is match


def test_password_matches_compares_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert password_matches("tried", "secret") is False
    assert calls == [(b"tried", b"secret")]  # bytes: compare_digest's constant-time path


@pytest.mark.parametrize(
    ("env", "secrets", "expected"),
    [
        ({}, {}, None),
        ({"BN_LAB_PASSWORD": "from-env"}, {}, "from-env"),
        ({}, {"password": "from-secrets"}, "from-secrets"),
        ({"BN_LAB_PASSWORD": "from-env"}, {"password": "from-secrets"}, "from-env"),
        ({"BN_LAB_PASSWORD": ""}, {"password": "from-secrets"}, "from-secrets"),
        ({"BN_LAB_PASSWORD": ""}, {}, None),
    ],
)
def test_configured_password_prefers_the_environment(env, secrets, expected):
    assert configured_password(env, secrets) == expected


@pytest.mark.parametrize("value", [1234, "", ["a"]])
def test_a_secrets_password_that_is_not_a_string_is_refused(value):
    with pytest.raises(GateError, match="non-empty quoted string"):
        configured_password({}, {"password": value})


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"redirect_uri": "u", "cookie_secret": "s", "client_id": "c"}, [None]),
        ({"client_id": "c", "client_kwargs": {"prompt": "login"}}, [None]),
        ({"redirect_uri": "u", "google": {"client_id": "g"}, "okta": {"client_id": "o"}},
         ["google", "okta"]),
        ({"redirect_uri": "u", "cookie_secret": "s"}, []),
    ],
)  # fmt: skip
def test_oidc_providers_reads_the_auth_section(auth, expected):
    assert oidc_providers(auth) == expected


# ----------------------------------------------------------------------------- AppTest gates


@pytest.fixture()
def no_password(monkeypatch):
    monkeypatch.delenv("BN_LAB_PASSWORD", raising=False)


def _run_app(secrets: dict, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_secrets_toml_password_gates_the_app(runner, no_password):
    at = _run_app({"password": PASSWORD})
    assert [t.key for t in at.text_input] == ["login-password"]
    assert not at.title and not runner.store.list_runs()
    # AppTest's first run starts on the main script and ends on the Train page; it drops the
    # widget values of the next run at that page change (a browser sends them along).
    at.run()

    at.text_input(key="login-password").input("guess")
    started = time.monotonic()
    at.button(key="login-submit").click().run()
    assert time.monotonic() - started >= _auth.WRONG_PAUSE_S  # a wrong guess waits its second
    assert [e.value for e in at.error] == [_auth.WRONG] and not at.title

    at.text_input(key="login-password").input(PASSWORD)
    at.button(key="login-submit").click().run()
    assert [t.value for t in at.title] == ["Train"] and not at.error
    assert at.session_state[_auth.PASSED]


OIDC = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}}


def test_an_oidc_provider_shows_only_its_login_button(runner, no_password, monkeypatch):
    monkeypatch.setattr(_auth, "_authlib_installed", lambda: True)
    auth = {"auth": {**OIDC["auth"], "google": {"client_id": "g", "client_secret": "s"}}}
    at = _run_app({**auth, "password": PASSWORD}, user={"is_logged_in": False})
    assert not at.title and not at.text_input and not at.error  # OIDC replaces the password
    assert [b.label for b in at.button] == ["Log in with google"]


def test_oidc_without_authlib_stays_locked_and_says_what_to_install(
    runner, no_password, monkeypatch
):
    monkeypatch.setattr(_auth, "_authlib_installed", lambda: False)
    at = _run_app({"auth": {**OIDC["auth"], "client_id": "c"}}, user={"is_logged_in": False})
    assert not at.title and not at.button
    assert [e.value for e in at.error] == [
        "Logging in through [auth] needs Authlib: pip install 'Authlib>=1.3.2'."
    ]


def test_an_oidc_login_opens_the_app_with_log_out_in_the_sidebar(runner, no_password):
    at = _run_app(OIDC, user={"is_logged_in": True, "email": "ada@example.org"})
    assert [t.value for t in at.title] == ["Train"]
    assert [b.label for b in at.sidebar.button] == ["Log out"]
    assert "ada@example.org" in at.sidebar.caption[0].value


def test_an_auth_section_without_provider_locks_the_app(runner, no_password):
    at = _run_app(OIDC, user={"is_logged_in": False})
    assert not at.title and not at.button
    assert "names no provider" in at.error[0].value


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture()
def browser():
    assert os.path.exists(CHROMIUM), "install Debian's chromium (scripts/test.sh does)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _env(home: Path, password: str | None) -> dict[str, str]:
    env = {**os.environ, "BN_LAB_HOME": str(home), "BN_LAB_STANDBY": "0"}
    env.pop("BN_LAB_PASSWORD", None)
    if password is not None:
        env["BN_LAB_PASSWORD"] = password
    return env


def _assert_only_the_gate(page: Page) -> None:
    """The password field is there and, a second later, still nothing of the app is."""
    expect(page.locator(PASSWORD_FIELD)).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)  # anything the app would draw after the field is seen too
    for selector in (HEADINGS, MENU, START, "[data-testid='stPlotlyChart']"):
        assert page.locator(selector).count() == 0, selector


def _new_page(browser: Browser) -> Page:  # a new context: a new browser session
    return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()


def test_with_a_password_every_url_shows_only_the_password_field(browser, tmp_path):
    home = tmp_path / "bn_lab"
    with dashboard(_env(home, PASSWORD), tmp_path / "streamlit.log") as url:
        # /runs first: a fresh server's first request goes through the pages-directory mode.
        for path in ("/runs", "/", "/train", "/compare", "/about"):
            page = _new_page(browser)
            page.goto(url + path)
            _assert_only_the_gate(page)
            page.screenshot(path=str(ARTIFACTS / f"locked{path.replace('/', '-')}.png"))
            page.context.close()
        assert not home.exists(), "the job runner started before anyone logged in"

        page = _new_page(browser)
        page.goto(url + "/runs")
        expect(page.locator(PASSWORD_FIELD)).to_be_visible(timeout=60_000)
        page.locator(PASSWORD_FIELD).fill("not the password")
        page.locator(".st-key-login-submit button").click()
        expect(page.get_by_text(_auth.WRONG, exact=True)).to_be_visible(timeout=30_000)
        _assert_only_the_gate(page)
        expect(page.locator(PASSWORD_FIELD)).to_have_value("")  # the form forgets what was typed

        page.locator(PASSWORD_FIELD).fill(PASSWORD)
        page.locator(".st-key-login-submit button").click()
        expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=60_000)
        expect(page.locator(PASSWORD_FIELD)).to_have_count(0)
        expect(page.get_by_text(_auth.WRONG, exact=True)).to_have_count(0)
        expect(page.locator(MENU)).to_have_count(len(APP_MENU))
        # The login lasts for the session: the menu's Train link needs no password again.
        page.locator(MENU).filter(has_text="Train").click()
        expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(timeout=60_000)
        expect(page.locator(START)).to_be_visible()
        expect(page.locator(PASSWORD_FIELD)).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "unlocked-train.png"))
        assert home.exists(), "the app did not start its job runner after the login"
        # Log out (the sidebar) locks this session again.
        page.locator("[data-testid='stSidebar'] .st-key-logout button").click()
        _assert_only_the_gate(page)
        page.context.close()


def test_without_a_password_the_app_opens_directly(browser, tmp_path):
    with dashboard(_env(tmp_path / "bn_lab", None), tmp_path / "streamlit.log") as url:
        page = _new_page(browser)
        page.goto(url + "/runs")
        expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=60_000)
        expect(page.locator(MENU)).to_have_count(len(APP_MENU))
        assert page.locator("input[type='password']").count() == 0
        page.context.close()


# ----------------------------------------------------------------------------- who can connect


def _fake_checkout(tmp_path: Path) -> Path:
    """scripts/run.sh in a copy of the layout it needs, with a setup.sh that does nothing and a
    .venv/bin/python that prints the arguments it was given, one per line."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run.sh", tmp_path / "scripts" / "run.sh")
    (tmp_path / "scripts" / "setup.sh").write_text("exit 0\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    python.chmod(0o755)
    return tmp_path / "scripts" / "run.sh"


def _addresses(script: Path, *args: str, address: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "BN_LAB_ADDRESS"}
    if address is not None:
        env["BN_LAB_ADDRESS"] = address
    done = subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[:3] == ["-m", "streamlit", "run"], argv
    found = [argv[i + 1] for i, a in enumerate(argv) if a == "--server.address"]
    return found + [a.split("=", 1)[1] for a in argv if a.startswith("--server.address=")]


def test_run_sh_listens_on_loopback_unless_told_otherwise(tmp_path):
    script = _fake_checkout(tmp_path)
    assert _addresses(script) == ["127.0.0.1"]
    assert _addresses(script, "--server.port", "8600") == ["127.0.0.1"]
    assert _addresses(script, address="0.0.0.0") == ["0.0.0.0"]
    assert _addresses(script, "--server.address", "192.0.2.7") == ["192.0.2.7"]
    assert _addresses(script, "--server.address=192.0.2.7", address="0.0.0.0") == ["192.0.2.7"]
    # An empty "${address[@]}" under set -u fails in bash < 4.4 (macOS' /bin/bash 3.2), which
    # this machine's bash cannot show: every expansion of the array is guarded.
    text = script.read_text().replace('${address[@]+"${address[@]}"}', "")
    assert "${address[@]}" not in text


def test_compose_publishes_on_the_host_loopback_and_the_image_listens_inside():
    compose = (ROOT / "docker-compose.yml").read_text()
    block = re.search(r"^ {4}ports:\n((?: {6}- .*\n)+)", compose, re.MULTILINE)
    assert block, "docker-compose.yml has no ports: list"
    ports = re.findall(r'- "([^"]+)"', block.group(1))
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports
    # Inside its own network namespace the container must listen on all interfaces, or the
    # published port would reach nothing.
    assert re.search(r"STREAMLIT_SERVER_ADDRESS=0\.0\.0\.0\b", (ROOT / "Dockerfile").read_text())


def test_a_secrets_file_that_does_not_parse_locks_instead_of_opening(tmp_path, monkeypatch):
    """No secrets file is the common case (no gate, no exception); one that exists but does not
    parse must not count as "no password"."""
    secrets_file = tmp_path / "secrets.toml"
    saved = st.get_option("secrets.files")
    config.set_option("secrets.files", [str(secrets_file)])  # st.set_option refuses this one
    try:
        monkeypatch.setattr(st, "secrets", Secrets())
        assert dict(_auth._secrets()) == {}
        secrets_file.write_text('password = "unclosed\n')
        monkeypatch.setattr(st, "secrets", Secrets())
        with pytest.raises(GateError, match="fix its TOML syntax"):
            _auth._secrets()
        secrets_file.write_text('password = "s3cret"\n')
        monkeypatch.setattr(st, "secrets", Secrets())
        assert configured_password({}, _auth._secrets()) == "s3cret"
    finally:
        config.set_option("secrets.files", saved)

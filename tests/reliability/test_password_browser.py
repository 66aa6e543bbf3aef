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

import os
import random
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import streamlit as st
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright
from streamlit import config
from streamlit.runtime.secrets import Secrets
from streamlit.testing.v1 import AppTest

from pages import _auth, _guesses
from pages._auth import (
    GateError,
    configured_password,
    oidc_providers,
    password_matches,
)
from tests.browser import APP_MENU, ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, dashboard

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


def share_slower_when_it_differs_late(matches, pairs: int = 200) -> float:
    """How often, in ``pairs`` paired trials, ``matches`` takes longer to refuse a guess that
    differs from a long password in its last character than one that differs in its first.
    About 0.5 when time does not depend on where they differ; near 1 when it does (a guesser
    could then find the password one character at a time). Each pair runs in random order,
    back to back, so a busy machine slows both alike."""
    n = 1_000_000  # long, so that a comparison that stops early saves measurable time
    expected = "a" * n
    early, late = "b" + "a" * (n - 1), "a" * (n - 1) + "b"
    rng = random.Random(0)
    slower = 0
    for _ in range(pairs):
        took = {}
        for guess in rng.sample([early, late], 2):
            start = time.perf_counter()
            assert matches(guess, expected) is False
            took[guess is late] = time.perf_counter() - start
        slower += took[True] > took[False]
    return slower / pairs


def test_how_long_a_wrong_password_takes_does_not_say_where_it_differs():
    # The harness can see a leak: the plain comparisons stop at the first difference, even
    # behind the encoding password_matches does too.
    assert share_slower_when_it_differs_late(lambda g, e: g == e) > 0.9
    assert share_slower_when_it_differs_late(lambda g, e: g.encode() == e.encode()) > 0.9
    # password_matches: as often slower as faster (0.5 give or take noise).
    assert 0.2 < share_slower_when_it_differs_late(password_matches) < 0.8


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


# ----------------------------------------------------------------------------- guessing


@pytest.fixture(autouse=True)
def fresh_guesses(monkeypatch):
    """Each test starts with no failed attempts on record (AppTest runs in this process)."""
    monkeypatch.setattr(_auth, "GUESSES", _guesses.Guesses())


class FakeTime:
    """A clock and a sleep that advances it: the schedule without waiting for it."""

    def __init__(self):
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def patient_guesser(guesses: _guesses.Guesses, t: FakeTime, n: int, client=None) -> list:
    """The times at which ``n`` wrong guesses were checked, one after another, each sent
    again after the wait a refusal names."""
    checked = []
    while len(checked) < n:
        verdict = guesses.attempt(lambda: checked.append(t.now) or False, client)
        if verdict is not False:
            t.sleep(verdict)
    return checked


def test_wrong_guesses_are_spaced_one_second_then_doubling_to_a_minute():
    t = FakeTime()
    guesses = _guesses.Guesses(clock=t.clock, sleep=t.sleep)
    checked = patient_guesser(guesses, t, 28)
    gaps = [round(b - a, 6) for a, b in zip(checked, checked[1:], strict=False)]
    assert gaps == [1.0] * 20 + [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    # 10 minutes without a guess: the schedule starts again; the right password gets in at once.
    t.sleep(600)
    before = t.now
    assert guesses.attempt(lambda: True) is True and t.now == before


def test_one_address_is_slowed_after_three_and_its_login_clears_it():
    t = FakeTime()
    guesses = _guesses.Guesses(clock=t.clock, sleep=t.sleep)
    checked = patient_guesser(guesses, t, 6, client="203.0.113.7")
    gaps = [b - a for a, b in zip(checked, checked[1:], strict=False)]
    assert gaps == [1.0, 1.0, 1.0, 2.0, 4.0]
    # Another address waits only for the process's spacing (1 s), not for this one's.
    t.sleep(1.0)
    before = t.now
    assert guesses.attempt(lambda: False, "198.51.100.2") is False and t.now == before
    t.sleep(60)
    assert guesses.attempt(lambda: True, "203.0.113.7") is True  # its failures are forgotten
    assert "203.0.113.7" not in guesses.clients


def test_a_turn_too_far_away_is_refused_unchecked():
    t = FakeTime()
    guesses = _guesses.Guesses(clock=t.clock, sleep=t.sleep, process_free=0)
    waits = [guesses.attempt(lambda: False) for _ in range(4)]  # each waits 0, 2, 4, 8 s
    asked = []
    refused = guesses.attempt(lambda: asked.append(1) or True)
    assert waits[:4] == [False] * 4 and refused > guesses.max_wait_s and not asked


def test_parallel_sessions_guess_no_faster_than_one(caplog):
    """Six sessions (threads) guessing at once with the dashboard's schedule: the six checks
    take turns one second apart, so the six answers take at least 5 s, not one."""
    guesses = _guesses.Guesses()
    answers: list[float] = []
    start = time.monotonic()

    def guess(i: int) -> None:
        verdict = guesses.attempt(lambda: _auth.password_matches(f"guess {i}", PASSWORD))
        assert verdict is False
        answers.append(time.monotonic() - start)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(6)]
    with caplog.at_level("WARNING", logger="bn_lab.auth"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(answers) == 6 and max(answers) >= 5 * guesses.base_s - 0.05, answers
    failed = [r.getMessage() for r in caplog.records if r.name == "bn_lab.auth"]
    assert len(failed) == 6 and all(m.startswith("Wrong password from ") for m in failed)
    assert not any("guess" in m or PASSWORD in m for m in failed)  # never the password
    assert all(r.created for r in caplog.records)  # each with its time
    # Nobody guessing: the right password is checked at once.
    quiet = _guesses.Guesses()
    started = time.monotonic()
    assert quiet.attempt(lambda: _auth.password_matches(PASSWORD, PASSWORD)) is True
    assert time.monotonic() - started < 0.1


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


def test_parallel_browser_sessions_wait_their_turn(browser, tmp_path):
    """Four browser sessions send a wrong password at once: the server checks them one after
    another (1 s apart), so the last answer comes after 3 s or more (each session alone
    would answer in about 1 s); the server's log names each failure and never the password."""
    log = tmp_path / "streamlit.log"
    with dashboard(_env(tmp_path / "bn_lab", PASSWORD), log) as url:
        pages = [_new_page(browser) for _ in range(4)]
        for page in pages:
            page.goto(url + "/runs")
            expect(page.locator(PASSWORD_FIELD)).to_be_visible(timeout=60_000)
            page.locator(PASSWORD_FIELD).fill("not the password")
        started = time.monotonic()
        for page in pages:
            page.locator(".st-key-login-submit button").click(no_wait_after=True)
        for page in pages:
            expect(page.get_by_text(_auth.WRONG, exact=True)).to_be_visible(timeout=30_000)
        took = time.monotonic() - started
        assert took >= 3.0, f"4 parallel wrong passwords answered in {took:.2f} s"
        for page in pages:
            page.context.close()
    text = log.read_text()
    assert text.count("Wrong password from ") == 4 and "not the password" not in text


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


def test_run_sh_guards_every_array_expansion_for_bash_before_4_4():
    """A static check, on purpose: bash < 4.4 (macOS' /bin/bash 3.2) calls an empty array
    unbound under ``set -u``, and no bash this machine has behaves so (bash 5 exempts
    "${a[@]}" even of an unset array), so run.sh cannot be run the way it would fail there.
    Every ``"${NAME[@]}"`` must sit inside its guard, ``${NAME[@]+"${NAME[@]}"}``."""
    text = (ROOT / "scripts" / "run.sh").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    guarded = re.sub(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\]\}"\}', "", code)
    assert re.search(r"\$\{\w+\[@\]\}", guarded) is None, "an unguarded array expansion"


def without_variables(value):
    """``value`` (a parsed compose file, or part of one) as compose reads it when no variable
    is set: ``${NAME:-default}`` and ``${NAME-default}`` give the default, ``${NAME}`` and
    ``$NAME`` nothing, ``$$`` a dollar."""
    if isinstance(value, dict):
        return {k: without_variables(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_variables(v) for v in value]
    if not isinstance(value, str):
        return value
    braced = r"\$\{(\w+)(?::?[-?]([^}]*))?\}"
    value = re.sub(braced, lambda m: m.group(2) or "", value.replace("$$", "\0"))
    return re.sub(r"\$\w+", "", value).replace("\0", "$")


def published(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of every port ``service`` publishes, short or long syntax;
    an address of "" means every interface of the host (compose's default)."""
    found = []
    for entry in service.get("ports", []) or []:
        if isinstance(entry, dict):  # long syntax: target, published, host_ip
            found.append((str(entry.get("host_ip", "")), str(entry.get("published", ""))))
            continue
        spec = str(entry).split("/")[0]  # "/tcp"
        host_ip = ""
        if spec.startswith("["):  # [::1]:8501:8501
            host_ip, spec = spec[1:].split("]:", 1)
        parts = spec.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        found.append((host_ip, parts[0] if len(parts) == 2 else ""))
    return found


def on_loopback(address: str) -> bool:
    return address == "::1" or address.startswith("127.")


def exposed_beyond_this_machine(compose: dict) -> list[str]:
    """Each way a service of ``compose`` (with no variables set) is reachable from another
    machine: a published port not bound to loopback, or the host's network."""
    problems = []
    for name, service in without_variables(compose).get("services", {}).items():
        if service.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host")
        for address, port in published(service):
            if not on_loopback(address):
                problems.append(
                    f"{name}: port {port or '(random)'} on {address or 'every interface'}"
                )
    return problems


def test_the_exposure_check_sees_a_port_open_to_the_network():
    for ports in (["8501:8501"], ["0.0.0.0:8501:8501"], ["8501"], ["${HOST:-0.0.0.0}:8501:8501"],
                  [{"target": 8501, "published": 8501}]):  # fmt: skip
        assert exposed_beyond_this_machine({"services": {"a": {"ports": ports}}}), ports
    for ports in (["127.0.0.1:${P:-8501}:8501"], ["[::1]:8501:8501/tcp"],
                  [{"target": 8501, "published": 8501, "host_ip": "127.0.0.1"}]):  # fmt: skip
        assert not exposed_beyond_this_machine({"services": {"a": {"ports": ports}}}), ports
    assert exposed_beyond_this_machine({"services": {"a": {"network_mode": "host"}}})


def dockerfile_env(text: str) -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (``ENV A=1 B=2``, continued lines)."""
    env: dict[str, str] = {}
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ENV":
            for pair in shlex.split(words[1], comments=True):
                key, sep, value = pair.partition("=")
                if sep:
                    env[key] = value
    return env


def test_compose_publishes_on_the_host_loopback_and_the_image_listens_inside():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert published(compose["services"]["bn-lab"]), "the dashboard publishes no port"
    # Every service, every port: reachable from this machine only, unless someone says so.
    assert exposed_beyond_this_machine(compose) == []
    # Inside its own network namespace the container must listen on all interfaces, or the
    # published port would reach nothing.
    env = dockerfile_env((ROOT / "Dockerfile").read_text())
    assert env.get("STREAMLIT_SERVER_ADDRESS") == "0.0.0.0", env


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

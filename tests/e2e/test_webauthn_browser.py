"""WebAuthn in a real browser: Chromium (Debian's /usr/bin/chromium, driven by /usr/bin/chromedriver through Selenium)
with its WebAuthn virtual authenticator, on the example relying party (examples/relying-party: index.html calling
navigator.credentials.create/get with Tessera's JSON options, and server.py calling Tessera with the account key),
served on http://localhost:PORT.

- ctap2 with resident keys and user verification: register, sign in with a username, usernameless sign-in.
- ctap1/u2f: a U2F authenticator registers (fido-u2f attestation) and signs in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions

from conftest import REPO_ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RP_SERVER = REPO_ROOT / "examples" / "relying-party" / "server.py"


@pytest.fixture
def relying_party(server):
    """The example relying party in front of `server`, on http://localhost:PORT (a trusted facet of the account)."""
    port = free_port()
    origin = f"http://localhost:{port}"
    server.cli(["account", "facets", "add", server.account["spAccountLoginName"], origin], check=True)
    env = dict(os.environ, TESSERA_URL=server.url, TESSERA_ACCOUNT=server.account["spAccountLoginName"],
               TESSERA_KEY=server.account["spAccountLoginKey"], RP_ID="localhost", PORT=str(port))
    proc = subprocess.Popen([sys.executable, str(RP_SERVER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(origin + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "relying party exited"
            assert time.monotonic() < deadline, "the example relying party did not start"
            time.sleep(0.1)
        yield origin
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: install the Debian packages chromium and chromium-driver", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def run(driver, fn: str, username: str, options: dict) -> dict:
    """Calls the page's register()/signIn() and returns Tessera's reply to the finishing call."""
    script = ("const done = arguments[arguments.length - 1];"
              f"{fn}(arguments[0], arguments[1]).then(done, e => done({{browserError: String(e)}}));")
    reply = driver.execute_async_script(script, username, options)
    assert isinstance(reply, dict) and "browserError" not in reply, reply
    return reply


def ok(reply: dict) -> dict:
    assert reply.get("errorCode") == 0, reply
    return reply


def test_ctap2_passkey_register_sign_in_and_usernameless(server, relying_party, browser):
    browser.get(relying_party + "/")
    browser.add_virtual_authenticator(VirtualAuthenticatorOptions(
        protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
        transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
        has_resident_key=True, has_user_verification=True, is_user_verified=True))

    reg = ok(run(browser, "register", "alice",
                 {"residentKey": "required", "userVerification": "required", "attestation": "direct"}))
    assert reg["type"] == "webauthn_enroll" and reg["fmt"] == "packed", reg
    assert reg["userVerified"] is True
    creds = browser.get_credentials()
    assert len(creds) == 1 and creds[0].is_resident_credential
    assert creds[0].id.rstrip("=") == reg["credentialId"]

    signed = ok(run(browser, "signIn", "alice", {"userVerification": "required"}))
    assert signed["username"] == "alice" and signed["psn"] == reg["psn"] and signed["userVerified"] is True
    first = signed["counter"]

    # usernameless: no username, empty allowCredentials, the user found by credential id and userHandle
    signed = ok(run(browser, "signIn", "", {"userVerification": "required"}))
    assert signed["username"] == "alice" and signed["psn"] == reg["psn"]
    assert signed["counter"] > first

    devices = server.call("find_user", username="alice")["Devices"]
    assert [(d["psn"], d["deviceType"]) for d in devices] == [(reg["psn"], 16)]


def test_ctap1_u2f_security_key_fido_u2f_attestation(server, relying_party, browser):
    browser.get(relying_party + "/")
    browser.add_virtual_authenticator(VirtualAuthenticatorOptions(
        protocol=VirtualAuthenticatorOptions.Protocol.U2F,
        transport=VirtualAuthenticatorOptions.Transport.USB,
        has_resident_key=False, has_user_verification=False, is_user_verified=False))

    reg = ok(run(browser, "register", "bob",
                 {"residentKey": "discouraged", "userVerification": "discouraged", "attestation": "direct"}))
    assert reg["fmt"] == "fido-u2f", reg
    assert reg["aaguid"] == "00000000-0000-0000-0000-000000000000" and reg["userVerified"] is False

    signed = ok(run(browser, "signIn", "bob", {"userVerification": "discouraged"}))
    assert signed["username"] == "bob" and signed["psn"] == reg["psn"] and signed["userVerified"] is False
    again = ok(run(browser, "signIn", "bob", {"userVerification": "discouraged"}))
    assert again["counter"] > signed["counter"]

    # a U2F authenticator cannot verify the user: a sign-in that requires it is refused by the browser or by Tessera
    script = ("const done = arguments[arguments.length - 1];"
              "signIn('bob', {userVerification: 'required'}).then(done, e => done({browserError: String(e)}));")
    reply = browser.execute_async_script(script)
    assert "browserError" in reply or reply.get("errorCode") == 9122, reply

"""FIDO U2F end to end with Yubico's SoftU2FDevice (python-u2flib-host) as the authenticator.

The soft device and Yubico's server library (python-u2flib-server, used as an independent verifier of what Tessera
accepted) need cryptography<37, so they live in their own venv (.venv-u2f, made by scripts/test) and are driven
through u2f_client.py in a subprocess. TESSERA_U2F_PYTHON names that venv's python (default .venv-u2f/bin/python).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

APP_ID = "https://rp.example.com"
FACET = "https://rp.example.com"
CLIENT = Path(__file__).resolve().parent / "u2f_client.py"


def u2f_python() -> str:
    path = os.environ.get("TESSERA_U2F_PYTHON") or str(REPO_ROOT / ".venv-u2f" / "bin" / "python")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"the soft U2F authenticator's python {path} is missing: scripts/test creates .venv-u2f "
            "(tests/e2e/requirements-u2f.txt + requirements-nodeps.txt), or set TESSERA_U2F_PYTHON",
            pytrace=False,
        )
    return path


def client(op: str, **fields) -> dict:
    """Runs one u2f_client.py request; fails the test with its error if it has one."""
    proc = subprocess.run(
        [u2f_python(), str(CLIENT)],
        input=json.dumps({"op": op, **fields}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"u2f_client {op}: exit {proc.returncode}, no JSON\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    assert proc.returncode == 0 and "error" not in out, f"u2f_client {op} failed: {out}\n{proc.stderr}"
    return out


class SoftKey:
    """A SoftU2FDevice whose state (keys, counter) lives in a JSON file."""

    def __init__(self, path: Path):
        self.path = path

    def register(self, register_request: dict, facet: str = FACET, any_facet: bool = False) -> dict:
        return client("register", device=str(self.path), facet=facet, request=register_request, any_facet=any_facet)

    def sign(self, sign_request: dict, facet: str = FACET) -> dict:
        return client("sign", device=str(self.path), facet=facet, request=sign_request)

    def clone(self, path: Path) -> "SoftKey":
        shutil.copyfile(self.path, path)
        return SoftKey(path)


def ok(reply: dict) -> dict:
    assert reply["errorCode"] == 0, reply
    return reply


def enroll(server, device: SoftKey, username: str, name: str | None = None, facet: str = FACET,
           any_facet: bool = False) -> tuple[dict, dict, dict]:
    """pre_enroll + the soft device + enroll; returns (RegisterRequest, device response, enroll reply)."""
    pre = ok(server.call("pre_enroll", username=username, **{"appId:": APP_ID}))
    assert pre["type"] == "u2f_register_request"
    req = pre["RegisterRequest"][0]
    resp = device.register(req, facet=facet, any_facet=any_facet)
    fields = dict(username=username, registrationData=resp["registrationData"], clientData=resp["clientData"],
                  sessionId=req["sessionId"], version=resp["version"])
    if name is not None:
        fields["securityKeyName"] = name
    return req, resp, server.call("enroll", **fields)


def sign_in(server, device: SoftKey, username: str) -> tuple[dict, dict, dict]:
    """pre_sign + the soft device + sign; returns (SignRequest, device response, sign reply)."""
    pre = ok(server.call("pre_sign", username=username, appId=APP_ID))
    assert pre["type"] == "u2f_sign_request" and pre["RegisterRequest"] == [], pre
    req = pre["SignRequest"][0]
    resp = device.sign(req)
    reply = server.call("sign", username=username, sessionId=req["sessionId"], keyHandle=resp["keyHandle"],
                        signatureData=resp["signatureData"], clientData=resp["clientData"])
    return req, resp, reply


def test_soft_device_registers_and_signs_in(server, tmp_path):
    ok(server.call("add_user", username="alice", pw="S3cret!pass"))
    device = SoftKey(tmp_path / "softkey.json")

    req, resp, reply = enroll(server, device, "alice", name="Soft key")
    ok(reply)
    assert reply["type"] == "enroll" and reply["errorMessage"] == "", reply
    assert reply["securityKeyName"] == "Soft key"
    # Yubico's server library accepts the very registration Tessera accepted, and finds the same key handle
    reference = client("verify_registration", appId=APP_ID, challenge=req["challenge"], facets=[FACET],
                       response={"registrationData": resp["registrationData"], "clientData": resp["clientData"]})
    assert reply["keyHandle"] == reference["keyHandle"]
    stored = json.loads(device.path.read_text())
    assert len(stored["keys"]) == 1

    found = ok(server.call("find_user", username="alice"))
    [dev] = found["Devices"]
    assert (dev["psn"], dev["deviceType"], dev["otpType"], dev["keyName"], dev["appId"]) == (
        reply["psn"], 12, 8, "Soft key", APP_ID)

    # first sign-in; the reference library verifies the same response with the registered public key
    sreq, sresp, sreply = sign_in(server, device, "alice")
    ok(sreply)
    assert sreply["type"] == "sign" and sreply["errorMessage"] == ""
    assert sreply["keyHandle"] == reference["keyHandle"] and sreply["psn"] == reply["psn"]
    assert sreply["counter"] == 1
    check = client("verify_sign", appId=APP_ID, challenge=sreq["challenge"], facets=[FACET], registration=reference,
                   response=sresp)
    assert check == {"counter": 1, "userPresence": 1}

    # the same response again: that sessionId is used up
    again = server.call("sign", username="alice", sessionId=sreq["sessionId"], signatureData=sresp["signatureData"],
                        clientData=sresp["clientData"])
    assert again["errorCode"] == 9110, again
    # ... and on a new ceremony its clientData carries the old challenge
    pre = ok(server.call("pre_sign", username="alice", appId=APP_ID))
    replay = server.call("sign", username="alice", sessionId=pre["SignRequest"][0]["sessionId"],
                         signatureData=sresp["signatureData"], clientData=sresp["clientData"])
    assert replay["errorCode"] == 9116, replay

    # a second sign-in works and counts up
    _, _, sreply = sign_in(server, device, "alice")
    assert ok(sreply)["counter"] == 2

    # a second registration lists the first key, so a real authenticator could refuse to register twice
    pre = ok(server.call("pre_enroll", username="alice", appId=APP_ID))
    assert [r["keyHandle"] for r in pre["SignRequest"]] == [reference["keyHandle"]]


def test_cloned_soft_device_is_flagged(server, tmp_path):
    ok(server.call("add_user", username="bob"))
    original = SoftKey(tmp_path / "original.json")
    ok(enroll(server, original, "bob")[2])
    clone = original.clone(tmp_path / "clone.json")

    _, _, reply = sign_in(server, original, "bob")
    assert ok(reply)["counter"] == 1
    # the clone's counter is where the original's was: not higher than the last one seen
    _, _, reply = sign_in(server, clone, "bob")
    assert reply["errorCode"] == 9113, reply
    assert "clone" in reply["errorMessage"]
    # the key stays refused, even for the original with a higher counter
    _, _, reply = sign_in(server, original, "bob")
    assert reply["errorCode"] == 9113, reply


def test_ceremonies_cross_nodes(start_server, backend, tmp_path):
    node1 = start_server(backend)
    node2 = start_server(backend, share_with=node1)
    ok(node1.call("add_user", username="carol"))
    device = SoftKey(tmp_path / "softkey.json")

    pre = ok(node1.call("pre_enroll", username="carol", appId=APP_ID))
    req = pre["RegisterRequest"][0]
    resp = device.register(req)
    enrolled = ok(node2.call("enroll", username="carol", sessionId=req["sessionId"],
                             registrationData=resp["registrationData"], clientData=resp["clientData"]))

    pre = ok(node2.call("pre_sign", username="carol", appId=APP_ID))
    sreq = pre["SignRequest"][0]
    sresp = device.sign(sreq)
    reply = ok(node1.call("sign", username="carol", sessionId=sreq["sessionId"], signatureData=sresp["signatureData"],
                          clientData=sresp["clientData"]))
    assert reply["psn"] == enrolled["psn"] and reply["counter"] == 1
    again = node2.call("sign", username="carol", sessionId=sreq["sessionId"], signatureData=sresp["signatureData"],
                       clientData=sresp["clientData"])
    assert again["errorCode"] == 9110, again


def test_trusted_facet_from_the_cli(server, tmp_path):
    ok(server.call("add_user", username="dave"))
    device = SoftKey(tmp_path / "softkey.json")
    facet = "https://login.example.org"
    name = server.account["spAccountLoginName"]

    _, _, reply = enroll(server, device, "dave", facet=facet, any_facet=True)
    assert reply["errorCode"] == 9117, reply

    server.cli(["account", "facets", "add", name, facet], check=True)
    listed = server.cli(["account", "facets", "list", name], check=True)
    assert facet in listed.stdout
    _, _, reply = enroll(server, device, "dave", facet=facet, any_facet=True)
    ok(reply)

    server.cli(["account", "facets", "remove", name, facet], check=True)
    _, _, reply = enroll(server, device, "dave", facet=facet, any_facet=True)
    assert reply["errorCode"] == 9117, reply


def test_delete_keys(server, tmp_path):
    ok(server.call("add_user", username="erin"))
    first, second = SoftKey(tmp_path / "k1.json"), SoftKey(tmp_path / "k2.json")
    handle1 = ok(enroll(server, first, "erin", name="Office")[2])["keyHandle"]
    ok(enroll(server, second, "erin")[2])

    r = ok(server.call("delete_key", username="erin", securityKeyName="Office", securityKeyType=1, appId=APP_ID))
    assert r["deleted"] == 1
    r = server.call("delete_key", username="erin", securityKeyName=handle1, securityKeyType=0)
    assert r["errorCode"] == 9114, r
    _, _, reply = sign_in(server, second, "erin")
    ok(reply)

    r = ok(server.call("delete_all_keys", username="erin"))
    assert r["deleted"] == 1
    r = server.call("pre_sign", username="erin", appId=APP_ID)
    assert r["errorCode"] == 9114, r

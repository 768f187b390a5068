"""WebAuthn end to end without a browser: a software authenticator (webauthn_soft.py, built on `cryptography`)
answers Tessera's options the way a browser and an authenticator would, and misbehaves on purpose for the bad-input
tests. Browser runs with Chromium's virtual authenticator are in test_webauthn_browser.py.

Every test runs on both backends; each bad input must get its precise error code, change nothing and leave the
server serving.
"""

from __future__ import annotations

import time

import pytest

from test_u2f import APP_ID, SoftKey, enroll as u2f_enroll, ok, sign_in as u2f_sign_in
from webauthn_soft import SoftAuthenticator, b64u, u2f_key_assertion, unb64u

RP_ID = "rp.example.com"
ORIGIN = "https://rp.example.com"


def add_facet(server, origin: str = ORIGIN) -> None:
    server.cli(["account", "facets", "add", server.account["spAccountLoginName"], origin], check=True)


def register(server, auth: SoftAuthenticator, username: str, fmt: str = "none", pre_fields=None, **kw) -> dict:
    pre = ok(server.call("webauthn_pre_enroll", username=username, rpId=RP_ID, **(pre_fields or {})))
    return server.call("webauthn_enroll", sessionId=pre["sessionId"], credential=auth.register(pre["publicKey"], fmt, **kw))


def sign(server, auth: SoftAuthenticator, username: str | None, pre_fields=None, **kw) -> dict:
    fields = {"rpId": RP_ID, **(pre_fields or {})}
    if username:
        fields["username"] = username
    pre = ok(server.call("webauthn_pre_sign", **fields))
    return server.call("webauthn_sign", sessionId=pre["sessionId"], credential=auth.assertion(pre["publicKey"], **kw))


def fido_devices(server, username: str) -> list[dict]:
    return [d for d in ok(server.call("find_user", username=username))["Devices"] if d["deviceType"] in (12, 16)]


@pytest.fixture
def rp(server):
    add_facet(server)
    ok(server.call("add_user", username="alice", firstName="Alice", lastName="Liddell"))
    return server


@pytest.mark.parametrize("fmt", ["none", "packed", "packed-x5c", "fido-u2f"])
def test_register_and_sign_in_each_attestation_format(rp, fmt):
    auth = SoftAuthenticator(ORIGIN)
    pre = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID, attestation="direct"))
    opts = pre["publicKey"]
    assert len(unb64u(opts["challenge"])) >= 16
    assert opts["rp"] == {"id": RP_ID, "name": rp.account["spAccountLoginName"]}
    assert opts["user"]["name"] == "alice" and opts["user"]["displayName"] == "Alice Liddell"
    assert b"alice" not in unb64u(opts["user"]["id"]) and len(unb64u(opts["user"]["id"])) >= 16
    assert {p["alg"] for p in opts["pubKeyCredParams"]} >= {-7, -257}
    assert opts["attestation"] == "direct" and opts["excludeCredentials"] == []
    reply = ok(rp.call("webauthn_enroll", sessionId=pre["sessionId"], credential=auth.register(opts, fmt)))
    assert reply["type"] == "webauthn_enroll"
    assert reply["fmt"] == ("packed" if fmt == "packed-x5c" else fmt)
    assert reply["credentialId"] == b64u(auth.credential_id)
    assert reply["userVerified"] is True and reply["backupEligible"] is False
    assert reply["aaguid"] == ("00000000-0000-0000-0000-000000000000" if fmt == "fido-u2f"
                               else "7e55e7a0-b2f6-4c4f-9a3a-d2b1c0ffee01")
    devices = fido_devices(rp, "alice")
    assert [(d["psn"], d["deviceType"]) for d in devices] == [(reply["psn"], 16)]

    signed = ok(sign(rp, auth, "alice"))
    assert signed["username"] == "alice" and signed["psn"] == reply["psn"] and signed["counter"] == 1
    assert signed["credentialId"] == reply["credentialId"] and signed["userVerified"] is True
    # the user's handle is stable; the credential is now excluded from a new registration
    pre2 = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID))
    assert pre2["publicKey"]["user"]["id"] == opts["user"]["id"]
    assert [c["id"] for c in pre2["publicKey"]["excludeCredentials"]] == [reply["credentialId"]]


def test_usernameless_sign_in_and_credential_as_string(rp):
    import json

    auth = SoftAuthenticator(ORIGIN)
    pre = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID, residentKey="required",
                     userVerification="required"))
    sel = pre["publicKey"]["authenticatorSelection"]
    assert sel == {"residentKey": "required", "requireResidentKey": True, "userVerification": "required"}
    cred = json.dumps(auth.register(pre["publicKey"], "packed"))  # the credential as a string
    ok(rp.call("webauthn_enroll", sessionId=pre["sessionId"], credential=cred, username="alice"))

    pre = ok(rp.call("webauthn_pre_sign", rpId=RP_ID, userVerification="required"))
    assert pre["publicKey"]["allowCredentials"] == [] and pre["publicKey"]["rpId"] == RP_ID
    signed = ok(rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=json.dumps(auth.assertion(pre["publicKey"]))))
    assert signed["username"] == "alice" and signed["userVerified"] is True

    # usernameless needs the userHandle, and it must be the credential's user's
    ok(rp.call("add_user", username="bob"))
    bob_handle = unb64u(ok(rp.call("webauthn_pre_enroll", username="bob", rpId=RP_ID))["publicKey"]["user"]["id"])
    assert sign(rp, auth, None, user_handle=None)["errorCode"] == 9125
    assert sign(rp, auth, None, user_handle=bob_handle)["errorCode"] == 9125
    assert ok(sign(rp, auth, None))["username"] == "alice"


def test_delete_key_delete_all_keys_and_delete_device(rp):
    creds = []
    for name in ("One", "Two", "Three"):
        auth = SoftAuthenticator(ORIGIN)
        pre = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID))
        creds.append(ok(rp.call("webauthn_enroll", sessionId=pre["sessionId"], securityKeyName=name,
                                credential=auth.register(pre["publicKey"]))))
    assert [d["keyName"] for d in fido_devices(rp, "alice")] == ["One", "Two", "Three"]
    assert ok(rp.call("delete_key", username="alice", securityKeyName="One", securityKeyType=1))["deleted"] == 1
    assert ok(rp.call("delete_key", username="alice", securityKeyName=creds[1]["credentialId"]))["deleted"] == 1
    ok(rp.call("delete_device", psn=creds[2]["psn"]))
    assert fido_devices(rp, "alice") == []
    for name in ("A", "B"):
        pre = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID))
        ok(rp.call("webauthn_enroll", sessionId=pre["sessionId"], securityKeyName=name,
                   credential=SoftAuthenticator(ORIGIN).register(pre["publicKey"])))
    assert ok(rp.call("delete_all_keys", username="alice"))["deleted"] == 2
    assert fido_devices(rp, "alice") == []
    assert rp.call("webauthn_pre_sign", username="alice", rpId=RP_ID)["errorCode"] == 9114


def test_u2f_key_signs_in_through_webauthn_with_appid_one_counter(rp, tmp_path):
    """A key enrolled through raw U2F `enroll` signs in through webauthn_sign (appid extension); the counter is
    shared, so going back is a regression that flags the key on both paths."""
    ok(rp.call("add_user", username="carol"))
    device = SoftKey(tmp_path / "softkey.json")
    reply = ok(u2f_enroll(rp, device, "carol")[2])
    key_handle = unb64u(reply["keyHandle"])

    pre = ok(rp.call("webauthn_pre_sign", username="carol", rpId=RP_ID))
    opts = pre["publicKey"]
    assert opts["allowCredentials"] == [{"type": "public-key", "id": b64u(key_handle)}]
    assert opts["extensions"] == {"appid": APP_ID}
    signed = ok(rp.call("webauthn_sign", sessionId=pre["sessionId"],
                        credential=u2f_key_assertion(str(device.path), key_handle, APP_ID, opts, ORIGIN)))
    assert signed["username"] == "carol" and signed["psn"] == reply["psn"] and signed["counter"] == 1

    # raw U2F continues from the same counter
    ok(u2f_sign_in(rp, device, "carol")[2])
    # a WebAuthn assertion whose counter (rewound) is not above the stored one: regression, key flagged
    import json
    state = json.loads(device.path.read_text())
    state["counter"] = 1
    device.path.write_text(json.dumps(state))
    pre = ok(rp.call("webauthn_pre_sign", username="carol", rpId=RP_ID))
    r = rp.call("webauthn_sign", sessionId=pre["sessionId"],
                credential=u2f_key_assertion(str(device.path), key_handle, APP_ID, pre["publicKey"], ORIGIN))
    assert r["errorCode"] == 9113, r
    # flagged: refused on the raw U2F path too, even with a fresh counter
    state = json.loads(device.path.read_text())
    state["counter"] = 100
    device.path.write_text(json.dumps(state))
    assert u2f_sign_in(rp, device, "carol")[2]["errorCode"] == 9113
    pre = ok(rp.call("webauthn_pre_sign", username="carol", rpId=RP_ID))
    r = rp.call("webauthn_sign", sessionId=pre["sessionId"],
                credential=u2f_key_assertion(str(device.path), key_handle, APP_ID, pre["publicKey"], ORIGIN))
    assert r["errorCode"] == 9113, r
    # the U2F key is excluded when the user registers a WebAuthn credential (appidExclude names its appId)
    pre = ok(rp.call("webauthn_pre_enroll", username="carol", rpId=RP_ID))
    assert [c["id"] for c in pre["publicKey"]["excludeCredentials"]] == [b64u(key_handle)]
    assert pre["publicKey"]["extensions"]["appidExclude"] == APP_ID


def test_counter_regression_flags_the_credential(rp):
    auth = SoftAuthenticator(ORIGIN)
    ok(register(rp, auth, "alice"))
    assert ok(sign(rp, auth, "alice"))["counter"] == 1
    assert ok(sign(rp, auth, "alice", counter=5))["counter"] == 5
    r = sign(rp, auth, "alice", counter=5)
    assert r["errorCode"] == 9113 and "flagged" in r["errorMessage"], r
    r = sign(rp, auth, "alice", counter=6)
    assert r["errorCode"] == 9113 and "flagged" in r["errorMessage"], r


def test_counterless_authenticator_signs_in_with_zero(rp):
    auth = SoftAuthenticator(ORIGIN)
    ok(register(rp, auth, "alice"))
    assert ok(sign(rp, auth, "alice", counter=0))["counter"] == 0
    assert ok(sign(rp, auth, "alice", counter=0))["counter"] == 0
    assert ok(sign(rp, auth, "alice", counter=3))["counter"] == 3
    assert sign(rp, auth, "alice", counter=0)["errorCode"] == 9113


def _unchanged(server, before):
    assert fido_devices(server, "alice") == before
    assert server.get("/healthz").status_code == 200


@pytest.mark.parametrize("case,code", [
    ("origin_not_facet", 9117),
    ("origin_wrong_host", 9124),
    ("wrong_rp_id_hash", 9121),
    ("uv_missing", 9122),
    ("wrong_type", 9115),
    ("wrong_challenge", 9116),
    ("garbage_cbor", 9120),
    ("truncated_cbor", 9120),
    ("not_json", 9120),
])
def test_bad_registration(rp, case, code):
    add_facet(rp, "https://evil.example.net")
    auth = SoftAuthenticator(ORIGIN)
    pre = ok(rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID, userVerification="required"))
    opts = pre["publicKey"]
    kw = {
        "origin_not_facet": dict(origin="https://other.rp.example.com"),
        "origin_wrong_host": dict(origin="https://evil.example.net"),
        "wrong_rp_id_hash": dict(rp_id="example.org"),
        "uv_missing": dict(uv=False),
        "wrong_type": dict(typ="webauthn.get"),
        "wrong_challenge": dict(challenge=b64u(b"x" * 32)),
    }.get(case, {})
    cred = auth.register(opts, "packed", **kw)
    if case == "garbage_cbor":
        cred["response"]["attestationObject"] = b64u(b"\xa3\x63fmt\x64none\xff\xff\x00garbage")
    elif case == "truncated_cbor":
        cred["response"]["attestationObject"] = b64u(unb64u(cred["response"]["attestationObject"])[:-20])
    elif case == "not_json":
        cred = "{not json"
    before = fido_devices(rp, "alice")
    r = rp.call("webauthn_enroll", sessionId=pre["sessionId"], credential=cred)
    assert r["errorCode"] == code, r
    _unchanged(rp, before)
    # malformed credentials leave the session for a good answer; anything verified against it used it up
    good = rp.call("webauthn_enroll", sessionId=pre["sessionId"], credential=SoftAuthenticator(ORIGIN).register(opts))
    assert good["errorCode"] == (0 if code == 9120 else 9110), good


@pytest.mark.parametrize("case,code", [
    ("origin_not_facet", 9117),
    ("origin_wrong_host", 9124),
    ("wrong_rp_id_hash", 9121),
    ("uv_missing", 9122),
    ("not_present", 9118),
    ("bad_signature", 9112),
    ("garbage_auth_data", 9120),
])
def test_bad_assertion(rp, case, code):
    add_facet(rp, "https://evil.example.net")
    auth = SoftAuthenticator(ORIGIN)
    ok(register(rp, auth, "alice"))
    pre = ok(rp.call("webauthn_pre_sign", username="alice", rpId=RP_ID, userVerification="required"))
    kw = {
        "origin_not_facet": dict(origin="https://other.rp.example.com"),
        "origin_wrong_host": dict(origin="https://evil.example.net"),
        "wrong_rp_id_hash": dict(rp_id="example.org"),
        "uv_missing": dict(uv=False),
        "not_present": dict(up=False),
    }.get(case, {})
    cred = auth.assertion(pre["publicKey"], **kw)
    if case == "bad_signature":
        sig = bytearray(unb64u(cred["response"]["signature"]))
        sig[-3] ^= 0x55
        cred["response"]["signature"] = b64u(bytes(sig))
    elif case == "garbage_auth_data":
        cred["response"]["authenticatorData"] = b64u(b"\x00" * 20)
    before = fido_devices(rp, "alice")
    r = rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred)
    assert r["errorCode"] == code, r
    _unchanged(rp, before)
    assert ok(sign(rp, auth, "alice"))["username"] == "alice"


def test_sessions_single_use_other_account_other_user(rp):
    auth = SoftAuthenticator(ORIGIN)
    ok(register(rp, auth, "alice"))
    ok(rp.call("add_user", username="bob"))
    # a second account with its own user alice
    import json
    created = json.loads(rp.cli(["account", "create", "other", "--json"], check=True).stdout)
    other_account = {k: created[k] for k in ("spAccountLoginName", "spAccountLoginKey")}
    assert rp.call("add_user", username="alice", **other_account)["errorCode"] == 0

    pre = ok(rp.call("webauthn_pre_sign", username="alice", rpId=RP_ID))
    cred = auth.assertion(pre["publicKey"])
    # another account, or a call naming another user: 9110, the session is not used up
    assert rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred, **other_account)["errorCode"] == 9110
    assert rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred, username="bob")["errorCode"] == 9110
    ok(rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred, username="alice"))
    # replayed
    assert rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred)["errorCode"] == 9110
    # another account cannot use this account's credential in its own ceremony
    add_facet_cli = ["account", "facets", "add", other_account["spAccountLoginName"], ORIGIN]
    rp.cli(add_facet_cli, check=True)
    pre = ok(rp.call("webauthn_pre_sign", rpId=RP_ID, **other_account))
    r = rp.call("webauthn_sign", sessionId=pre["sessionId"], credential=auth.assertion(pre["publicKey"]), **other_account)
    assert r["errorCode"] == 9114, r
    # nor register the same credential id again in this account
    pre = ok(rp.call("webauthn_pre_enroll", username="bob", rpId=RP_ID))
    assert rp.call("webauthn_enroll", sessionId=pre["sessionId"],
                   credential=auth.register(pre["publicKey"]))["errorCode"] == 9126


def test_expired_session(start_server, backend):
    server = start_server(backend, env={"TESSERA_U2F__CEREMONY_SECONDS": "1"})
    add_facet(server)
    ok(server.call("add_user", username="alice"))
    auth = SoftAuthenticator(ORIGIN)
    pre = ok(server.call("webauthn_pre_enroll", username="alice", rpId=RP_ID))
    assert pre["publicKey"]["timeout"] == 1000
    time.sleep(2.2)
    assert server.call("webauthn_enroll", sessionId=pre["sessionId"],
                       credential=auth.register(pre["publicKey"]))["errorCode"] == 9110
    assert fido_devices(server, "alice") == []


def test_begin_on_one_node_finish_on_the_other(start_server, backend):
    a = start_server(backend)
    b = start_server(backend, share_with=a)
    add_facet(a)
    ok(a.call("add_user", username="alice"))
    auth = SoftAuthenticator(ORIGIN)
    pre = ok(a.call("webauthn_pre_enroll", username="alice", rpId=RP_ID, residentKey="required"))
    ok(b.call("webauthn_enroll", sessionId=pre["sessionId"], credential=auth.register(pre["publicKey"], "packed")))
    pre = ok(b.call("webauthn_pre_sign", rpId=RP_ID))
    cred = auth.assertion(pre["publicKey"])
    assert ok(a.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred))["username"] == "alice"
    assert b.call("webauthn_sign", sessionId=pre["sessionId"], credential=cred)["errorCode"] == 9110


def test_bad_requests(rp):
    assert rp.call("webauthn_pre_enroll", username="alice")["errorCode"] == 9102
    assert rp.call("webauthn_pre_enroll", username="alice", rpId="https://rp.example.com")["errorCode"] == 9103
    assert rp.call("webauthn_pre_enroll", username="alice", rpId=RP_ID, residentKey="always")["errorCode"] == 9103
    assert rp.call("webauthn_pre_enroll", username="nobody", rpId=RP_ID)["errorCode"] == 9001
    assert rp.call("webauthn_enroll", sessionId="x")["errorCode"] == 9102
    assert rp.call("webauthn_enroll", sessionId="x", credential=17)["errorCode"] == 9120
    assert rp.call("webauthn_enroll", sessionId="x", credential={"id": "AA"})["errorCode"] == 9120
    assert rp.call("webauthn_sign", sessionId="nope", credential=SoftAuthenticator(ORIGIN).assertion(
        {"rpId": RP_ID, "challenge": "AAAA"}))["errorCode"] == 9110
    assert rp.call("webauthn_pre_sign", username="alice", rpId=RP_ID)["errorCode"] == 9114
    spec = rp.get("/openapi.json").json()
    for t in ("webauthn_pre_enroll", "webauthn_enroll", "webauthn_pre_sign", "webauthn_sign"):
        assert f"Request_{t}" in spec["components"]["schemas"], t

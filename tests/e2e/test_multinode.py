"""Several `tessera serve` processes on one database (the PostgreSQL deployment, and two processes on one SQLite
file): every guarantee holds across nodes — one OTP is accepted once, a lockout counts failures from every node, a
session token expired on one node is invalid on the other."""

from __future__ import annotations

import concurrent.futures as cf

import pyotp
import pytest

SEED_HEX = "3132333435363738393031323334353637383930"  # RFC 4226's seed


def _hotp(counter: int) -> str:
    import base64

    return pyotp.HOTP(base64.b32encode(bytes.fromhex(SEED_HEX)).decode()).at(counter)


@pytest.fixture
def two_nodes(start_server, backend):
    a = start_server(backend)
    b = start_server(backend, share_with=a)
    return a, b


def _add_hotp_user(node, username: str) -> str:
    r = node.call("add_user", username=username)
    assert r["errorCode"] == 0, r
    r = node.call("add_oath_device", username=username, secretKeyHex=SEED_HEX, OtpType=1, OtpLength=6)
    assert r["errorCode"] == 0, r
    return r["psn"]


def test_one_code_is_accepted_once_across_nodes(two_nodes):
    a, b = two_nodes
    psn = _add_hotp_user(a, "racer")
    code = _hotp(0)
    nodes = [a, b] * 25

    def validate(node):
        return node.call("validate_oath_otp", username="racer", otp=code, psn=psn)["errorCode"]

    with cf.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(validate, nodes))
    assert codes.count(0) == 1, codes
    assert codes.count(9002) == 49, codes
    # the next code works on either node, once
    assert b.call("validate_oath_otp", username="racer", otp=_hotp(1))["errorCode"] == 0
    assert a.call("validate_oath_otp", username="racer", otp=_hotp(1))["errorCode"] == 9002


def test_lockout_counts_failures_from_both_nodes(two_nodes):
    a, b = two_nodes
    _add_hotp_user(a, "locked")
    for i in range(10):
        node = a if i % 2 == 0 else b
        r = node.call("validate_oath_otp", username="locked", otp="000000" if _hotp(0) != "000000" else "111111")
        assert r["errorCode"] == 9003, r
    # locked on both nodes, even for the right code
    assert a.call("validate_oath_otp", username="locked", otp=_hotp(0))["errorCode"] == 9015
    assert b.call("validate_oath_otp", username="locked", otp=_hotp(0))["errorCode"] == 9015


def test_session_token_expired_on_one_node_is_invalid_on_the_other(two_nodes):
    a, b = two_nodes
    assert a.call("add_user", username="sess")["errorCode"] == 0
    token = a.call("create_session_token", username="sess")["sessionTokenId"]
    assert b.call("is_session_token_valid", sessionTokenId=token)["errorCode"] == 0
    assert a.call("expire_session_token", sessionTokenId=token)["errorCode"] == 0
    assert b.call("is_session_token_valid", sessionTokenId=token)["errorCode"] == 9107


def test_only_one_node_creates_the_first_account(two_nodes):
    a, b = two_nodes
    listed = a.cli(["account", "list", "--json"], check=True).stdout.strip().splitlines()
    assert len(listed) == 1, listed
    # both nodes accept the one account's key
    assert a.call("find_users")["errorCode"] == 0
    assert b.call("find_users")["errorCode"] == 0

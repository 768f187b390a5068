"""The RADIUS front door (RFC 2865 over UDP), driven by two clients written elsewhere: FreeRADIUS's `radclient`
(freeradius-utils) and pyrad. Each flow on SQLite and PostgreSQL: password then Access-Challenge, password+OTP in
one request, OTP-only clients, out-of-band passcodes; a challenge begun on one node and finished on another; bad
input (missing or wrong Message-Authenticator, unknown client, wrong secret, truncated, oversized, unknown
attributes, replayed OTP, stale State) dropped or rejected while the server keeps serving; retransmissions answered
from the cache without a second evaluation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pyotp
import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

DICTIONARY = str(Path(__file__).parent / "data" / "radius.dictionary")
SECRET = "e2e-shared-secret-0123456789abcdef"
SEED_HEX = "3132333435363738393031323334353637383930"  # RFC 4226's seed
PASSWORD = "Corr3ct-horse"
REFRESH_MS = 300


def hotp(counter: int, digits: int = 6) -> str:
    return pyotp.HOTP(base64.b32encode(bytes.fromhex(SEED_HEX)).decode(), digits=digits).at(counter)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_radius(start_server, backend, *, share_with=None, refresh_ms=REFRESH_MS):
    port = free_udp_port()
    env = {"TESSERA_RADIUS__LISTEN": f"127.0.0.1:{port}"}
    if refresh_ms is not None:
        env["TESSERA_RADIUS__CLIENT_REFRESH_MS"] = str(refresh_ms)
    s = start_server(backend, env=env, share_with=share_with)
    s.radius_port = port
    return s


def account_name(server) -> str:
    return server.account["spAccountLoginName"]


def add_client(server, *, address="127.0.0.1", secret=SECRET, otp_only=False, wait=True):
    args = ["radius", "client", "add", account_name(server), "--address", address, "--secret", secret]
    if otp_only:
        args.append("--otp-only")
    r = server.cli(args)
    assert r.returncode == 0, r.stderr
    if wait:
        time.sleep(REFRESH_MS * 4 / 1000)


def remove_client(server, *, address="127.0.0.1"):
    r = server.cli(["radius", "client", "remove", account_name(server), "--address", address])
    assert r.returncode == 0, r.stderr


def add_users(server):
    """alice: password + HOTP token (6 digits); olivia: password + email only (out-of-band)."""
    assert server.call("add_user", username="alice", pw=PASSWORD)["errorCode"] == 0
    r = server.call("add_oath_device", username="alice", secretKeyHex=SEED_HEX, OtpType=1, OtpLength=6)
    assert r["errorCode"] == 0, r
    assert server.call("add_user", username="olivia", pw=PASSWORD, email="olivia@example.com")["errorCode"] == 0


# -- pyrad -------------------------------------------------------------------------------------------------------------


class Pyrad:
    def __init__(self, port: int, secret: str = SECRET, source: str | None = None, timeout: float = 3):
        self.client = Client(server="127.0.0.1", authport=port, secret=secret.encode(), dict=Dictionary(DICTIONARY),
                             retries=1, timeout=timeout, enforce_ma=True)
        if source:
            self.client.bind((source, 0))

    def request(self, user: str, password: str, *, state: bytes | None = None, ma: bool = True, **attrs):
        # pyrad adds a Message-Authenticator unless told not to
        req = self.client.CreateAuthPacket(code=packet.AccessRequest, User_Name=user, message_authenticator=ma)
        req["User-Password"] = req.PwCrypt(password)
        if state is not None:
            req["State"] = state
        for k, v in attrs.items():
            req[k.replace("_", "-")] = v
        if ma:
            req.add_message_authenticator()
        return req

    def auth(self, user: str, password: str, **kw):
        return self.client.SendPacket(self.request(user, password, **kw))


def reply_message(reply) -> str:
    return reply["Reply-Message"][0] if "Reply-Message" in reply else ""


# -- radclient ---------------------------------------------------------------------------------------------------------


def radclient(port: int, attrs: list[tuple[str, str]], secret: str = SECRET) -> tuple[str | None, str]:
    """Sends one Access-Request with radclient (a Message-Authenticator added: `Message-Authenticator = 0x00` makes
    radclient compute it); returns (the reply's code name or None, radclient's output)."""
    lines = [f"{k} = {v}" for k, v in attrs] + ["Message-Authenticator = 0x00"]
    p = subprocess.run(["radclient", "-x", "-r", "1", "-t", "3", f"127.0.0.1:{port}", "auth", secret],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    m = re.search(r"Received (Access-\w+) Id", out)
    return (m.group(1) if m else None), out


def rc_state(out: str) -> str:
    m = re.search(r"State = (0x[0-9a-fA-F]+)", out)
    assert m, out
    return m.group(1)


# -- raw datagrams ------------------------------------------------------------------------------------------------------


def send_raw(port: int, data: bytes, *, source: str = "127.0.0.1", timeout: float = 1.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(8192)
        except socket.timeout:
            return None


def hide_password(password: str, authenticator: bytes, secret: str = SECRET) -> bytes:
    """User-Password hiding of RFC 2865 §5.2."""
    data = password.encode()
    data += b"\x00" * (-len(data) % 16 or (16 if not data else 0))
    out, prev = b"", authenticator
    for i in range(0, len(data), 16):
        key = hashlib.md5(secret.encode() + prev).digest()
        block = bytes(a ^ b for a, b in zip(data[i:i + 16], key))
        out, prev = out + block, block
    return out


def build_request(attrs: list[tuple[int, bytes]], authenticator: bytes, secret: str = SECRET, ident: int = 7) -> tuple[bytes, bytes]:
    """An Access-Request with these attributes after a Message-Authenticator (RFC 3579 §3.2) computed here."""
    body = bytes([80, 18]) + bytes(16) + b"".join(bytes([t, len(v) + 2]) + v for t, v in attrs)
    pkt = bytes([1, ident]) + struct.pack("!H", 20 + len(body)) + authenticator + body
    mac = hmac.new(secret.encode(), pkt, "md5").digest()
    return pkt[:22] + mac + pkt[38:], authenticator


def metric(server, outcome: str) -> float:
    text = server.get("/metrics").text
    m = re.search(r'^tessera_radius_requests_total\{outcome="%s"\} (\S+)$' % re.escape(outcome), text, re.M)
    return float(m.group(1)) if m else 0.0


def audit_rows(server) -> list[dict]:
    time.sleep(0.3)  # the audit writer gathers rows for 50 ms
    r = server.cli(["audit", "list", "--json", "--limit", "1000"])
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def sent_code(server, count_before: int) -> str:
    """The newest passcode the `log` delivery provider wrote to the server's log after `count_before` earlier ones."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        codes = re.findall(r"Your code is (\d+)", server.stderr_text())
        if len(codes) > count_before:
            return codes[-1]
        time.sleep(0.1)
    pytest.fail("no passcode appeared in the server log")


# -- flows ---------------------------------------------------------------------------------------------------------------


def test_flows_with_pyrad(start_server, backend):
    s = start_radius(start_server, backend)
    add_users(s)
    add_client(s)
    c = Pyrad(s.radius_port)

    # 2. password immediately followed by the OTP: decided at once.
    r = c.auth("alice", PASSWORD + hotp(0))
    assert r.code == packet.AccessAccept, reply_message(r)
    assert "Message-Authenticator" in r  # enforce_ma also made pyrad check it
    r = c.auth("alice", PASSWORD + hotp(0))
    assert r.code == packet.AccessReject, "a replayed OTP must be refused"
    r = c.auth("alice", "wrong-password" + hotp(1))
    assert r.code == packet.AccessReject
    assert reply_message(r) == "Authentication failed"

    # 1. the password alone: Access-Challenge with State and Reply-Message, then the OTP with that State.
    r = c.auth("alice", PASSWORD)
    assert r.code == packet.AccessChallenge, reply_message(r)
    state = r["State"][0]
    assert len(state) >= 32
    assert "passcode" in reply_message(r)
    r = c.auth("alice", hotp(1), state=state)
    assert r.code == packet.AccessAccept, reply_message(r)
    # The State is single use: a stale State is refused, even with a fresh code.
    r = c.auth("alice", hotp(2), state=state)
    assert r.code == packet.AccessReject
    assert "challenge" in reply_message(r)
    # A wrong OTP after a challenge is refused.
    r = c.auth("alice", PASSWORD)
    assert r.code == packet.AccessChallenge
    r = c.auth("alice", "000000" if hotp(2) != "000000" else "111111", state=r["State"][0])
    assert r.code == packet.AccessReject
    # Another user cannot answer alice's challenge (and does not use it up).
    r = c.auth("alice", PASSWORD)
    state = r["State"][0]
    assert c.auth("olivia", hotp(2), state=state).code == packet.AccessReject
    assert c.auth("alice", hotp(2), state=state).code == packet.AccessAccept

    # 1 for an out-of-band user: a passcode is sent first (the log provider writes it to the server log).
    before = len(re.findall(r"Your code is (\d+)", s.stderr_text()))
    r = c.auth("olivia", PASSWORD)
    assert r.code == packet.AccessChallenge, reply_message(r)
    assert "email" in reply_message(r)
    code = sent_code(s, before)
    r = c.auth("olivia", code, state=r["State"][0])
    assert r.code == packet.AccessAccept, reply_message(r)

    # 3. an OTP-only client: User-Password is the OTP alone.
    remove_client(s)
    add_client(s, otp_only=True)
    r = c.auth("alice", hotp(3))
    assert r.code == packet.AccessAccept, reply_message(r)
    r = c.auth("alice", hotp(3))
    assert r.code == packet.AccessReject
    r = c.auth("alice", PASSWORD)  # the password is not a passcode
    assert r.code == packet.AccessReject

    # Every decision went through the service: audit rows with the RADIUS source, metrics by outcome.
    rows = audit_rows(s)
    radius_rows = [row for row in rows if row["source"] == "radius/127.0.0.1"]
    types = {row["type"] for row in radius_rows}
    assert {"validate_user", "validate_oath_otp", "send_oath_otp"} <= types, types
    assert any(row["type"] == "validate_oath_otp" and row["errorCode"] == 9002 for row in radius_rows)
    assert any(row["type"] == "validate_user" and row["errorCode"] == 9001 for row in radius_rows)
    assert metric(s, "accept") == 5
    assert metric(s, "challenge") == 4
    assert metric(s, "reject") == 7


def test_flows_with_radclient(start_server, backend):
    s = start_radius(start_server, backend)
    add_users(s)
    add_client(s)
    port = s.radius_port

    # 2. password + OTP
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{PASSWORD}{hotp(0)}"')])
    assert code == "Access-Accept", out
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{PASSWORD}{hotp(0)}"')])
    assert code == "Access-Reject", out  # replay

    # 1. password, Access-Challenge, then the OTP with the State
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{PASSWORD}"')])
    assert code == "Access-Challenge", out
    assert "Reply-Message" in out
    state = rc_state(out)
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{hotp(1)}"'), ("State", state)])
    assert code == "Access-Accept", out
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{hotp(2)}"'), ("State", state)])
    assert code == "Access-Reject", out  # stale State

    # 1 out-of-band
    before = len(re.findall(r"Your code is (\d+)", s.stderr_text()))
    code, out = radclient(port, [("User-Name", '"olivia"'), ("User-Password", f'"{PASSWORD}"')])
    assert code == "Access-Challenge", out
    passcode = sent_code(s, before)
    code, out = radclient(port, [("User-Name", '"olivia"'), ("User-Password", f'"{passcode}"'), ("State", rc_state(out))])
    assert code == "Access-Accept", out

    # A wrong secret: radclient gets no (valid) answer.
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{PASSWORD}{hotp(2)}"')],
                          secret="not-the-secret")
    assert code is None, out

    # 3. OTP only
    remove_client(s)
    add_client(s, otp_only=True)
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{hotp(2)}"')])
    assert code == "Access-Accept", out
    code, out = radclient(port, [("User-Name", '"alice"'), ("User-Password", f'"{hotp(2)}"')])
    assert code == "Access-Reject", out


def test_eight_digit_tokens_split_at_their_length(start_server):
    s = start_radius(start_server, "sqlite")
    assert s.call("add_user", username="eve", pw="pw-ending-in-digits-1234")["errorCode"] == 0
    r = s.call("add_oath_device", username="eve", secretKeyHex=SEED_HEX, OtpType=1, OtpLength=8)
    assert r["errorCode"] == 0, r
    add_client(s)
    c = Pyrad(s.radius_port)
    # The password itself ends in digits: password+OTP still splits at 8, and the password alone still challenges.
    assert c.auth("eve", "pw-ending-in-digits-1234" + hotp(0, 8)).code == packet.AccessAccept
    r = c.auth("eve", "pw-ending-in-digits-1234")
    assert r.code == packet.AccessChallenge, reply_message(r)
    assert c.auth("eve", hotp(1, 8), state=r["State"][0]).code == packet.AccessAccept


def test_clients_are_picked_up_and_dropped_without_restart(start_server, run_cli):
    s = start_radius(start_server, "sqlite", refresh_ms=None)  # the default refresh
    add_users(s)
    c = Pyrad(s.radius_port, timeout=0.5)
    with pytest.raises(Timeout):
        c.auth("alice", PASSWORD)  # no client yet: dropped
    add_client(s, wait=False)
    added = time.monotonic()
    while True:
        try:
            r = c.auth("nobody", "x")
            break
        except Timeout:
            assert time.monotonic() - added < 5, "a new client was not picked up within 5 s"
    assert r.code == packet.AccessReject
    listed = s.cli(["radius", "client", "list", account_name(s), "--json"])
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows == [{"account": account_name(s), "address": "127.0.0.1/32", "otpOnly": False,
                     "createdAt": rows[0]["createdAt"]}]
    assert SECRET not in listed.stdout
    # A second client with the same address, in any account, is refused; so are bad addresses.
    r = s.cli(["radius", "client", "add", account_name(s), "--address", "127.0.0.1", "--secret", "x" * 20])
    assert r.returncode != 0 and "already exists" in r.stderr
    r = s.cli(["radius", "client", "add", account_name(s), "--address", "10.0.0.5/24", "--secret", "x" * 20])
    assert r.returncode != 0 and "10.0.0.0/24" in r.stderr
    r = s.cli(["radius", "client", "add", "no-such-account", "--address", "10.0.0.0/24", "--secret", "x" * 20])
    assert r.returncode != 0
    # The secret from a file (its line break is not part of it).
    secret_file = s.workdir / "secret.txt"
    secret_file.write_text("file-secret-0123456789abcdef\n")
    r = s.cli(["radius", "client", "add", account_name(s), "--address", "127.0.0.2", "--secret-file", str(secret_file)])
    assert r.returncode == 0, r.stderr
    time.sleep(3)
    r = Pyrad(s.radius_port, secret="file-secret-0123456789abcdef", source="127.0.0.2").auth("nobody", "x")
    assert r.code == packet.AccessReject
    remove_client(s)
    removed = time.monotonic()
    while True:
        try:
            c.auth("nobody", "x")
        except Timeout:
            break
        assert time.monotonic() - removed < 5, "a removed client was still answered after 5 s"
    r = s.cli(["radius", "client", "remove", account_name(s), "--address", "127.0.0.1"])
    assert r.returncode != 0


# -- bad input ----------------------------------------------------------------------------------------------------------


def test_bad_input_is_dropped_or_rejected_and_the_server_keeps_serving(start_server, backend):
    s = start_radius(start_server, backend)
    add_users(s)
    add_client(s)
    port = s.radius_port
    c = Pyrad(port, timeout=1)
    counter = iter(range(100))

    def still_serving():
        r = c.auth("alice", PASSWORD + hotp(next(counter)))
        assert r.code == packet.AccessAccept, reply_message(r)

    still_serving()
    good = c.request("alice", PASSWORD + hotp(50)).RequestPacket()

    # Missing Message-Authenticator (what BlastRADIUS relies on): dropped.
    with pytest.raises(Timeout):
        c.auth("alice", PASSWORD + hotp(60), ma=False)
    # Wrong Message-Authenticator: dropped.
    bad_ma = bytearray(good)
    assert bad_ma[20] == 80  # pyrad puts it first
    bad_ma[25] ^= 0xFF
    assert send_raw(port, bytes(bad_ma)) is None
    # Wrong secret: dropped (pyrad gets nothing).
    with pytest.raises(Timeout):
        Pyrad(port, secret="wrong-secret-wrong-secret", timeout=1).auth("alice", PASSWORD + hotp(61))
    # Unknown client address: dropped.
    with pytest.raises(Timeout):
        Pyrad(port, source="127.0.0.3", timeout=1).auth("alice", PASSWORD + hotp(62))
    # Truncated and oversized datagrams, a Length field beyond the datagram, garbage, an Accounting-Request.
    assert send_raw(port, good[:10]) is None
    assert send_raw(port, good[:-5]) is None
    assert send_raw(port, good[:2] + struct.pack("!H", 4000) + good[4:]) is None
    big = good[:2] + struct.pack("!H", 4096) + good[4:] + bytes(5000)
    assert send_raw(port, big) is None
    assert send_raw(port, os.urandom(300)) is None
    assert send_raw(port, b"\x04" + good[1:]) is None
    still_serving()
    assert metric(s, "dropped_bad_authenticator") >= 3
    assert metric(s, "dropped_unknown_client") >= 1
    assert metric(s, "dropped_malformed") >= 4

    # Unknown attributes (an unassigned type and a Vendor-Specific) are skipped; the request is decided.
    auth = os.urandom(16)
    hidden = hide_password(PASSWORD + hotp(next(counter)), auth)
    raw, _ = build_request([(1, b"alice"), (250, b"unassigned"), (26, b"\x00\x00\x00\x09\x01\x06abcd"), (2, hidden)], auth)
    reply = send_raw(port, raw)
    assert reply is not None and reply[0] == packet.AccessAccept
    assert reply[4:20] == hashlib.md5(reply[:4] + auth + reply[20:] + SECRET.encode()).digest()

    # A Proxy-State is echoed.
    req = c.request("alice", PASSWORD + hotp(next(counter)))
    req["Proxy-State"] = b"proxy-1"
    r = c.client.SendPacket(req)
    assert r.code == packet.AccessAccept
    assert r["Proxy-State"] == [b"proxy-1"]

    # CHAP (no User-Password): rejected with a reason.
    req = c.client.CreateAuthPacket(code=packet.AccessRequest, User_Name="alice")
    req["CHAP-Password"] = b"\x01" + bytes(16)
    req.add_message_authenticator()
    r = c.client.SendPacket(req)
    assert r.code == packet.AccessReject
    assert "PAP" in reply_message(r)

    # A replayed OTP and a stale or forged State: rejected.
    code = hotp(next(counter))
    assert c.auth("alice", PASSWORD + code).code == packet.AccessAccept
    assert c.auth("alice", PASSWORD + code).code == packet.AccessReject
    assert c.auth("alice", hotp(next(counter)), state=b"forged-state-forged-state-forged").code == packet.AccessReject
    assert c.auth("alice", hotp(next(counter)), state=b"\xff\xfe").code == packet.AccessReject
    still_serving()


def test_retransmissions_get_the_cached_answer_without_a_second_evaluation(start_server):
    s = start_radius(start_server, "sqlite")
    add_users(s)
    add_client(s)
    c = Pyrad(s.radius_port)
    raw = c.request("alice", PASSWORD + hotp(0)).RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(raw, ("127.0.0.1", s.radius_port))
        first = sock.recv(4096)
        assert first[0] == packet.AccessAccept
        # Evaluated again, the same OTP would be a replay (Access-Reject): the cache answers Accept, byte for byte.
        for _ in range(3):
            sock.sendto(raw, ("127.0.0.1", s.radius_port))
            assert sock.recv(4096) == first
        # Same identifier, new Request Authenticator: a new request, evaluated (and refused: the OTP is used).
        req = c.request("alice", PASSWORD + hotp(0))
        req.id = raw[1]
        sock.sendto(req.RequestPacket(), ("127.0.0.1", s.radius_port))
        assert sock.recv(4096)[0] == packet.AccessReject
    assert metric(s, "retransmit") == 3
    rows = [r for r in audit_rows(s) if r["type"] == "validate_oath_otp"]
    assert [r["errorCode"] for r in reversed(rows)] == [0, 9002]
    # With RADIUS on, SIGTERM still stops the server promptly, its audit trail flushed.
    started = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - started < 5
    assert "audit writer did not finish" not in s.stderr_text()


# -- two nodes ----------------------------------------------------------------------------------------------------------


def test_a_challenge_begun_on_one_node_ends_on_the_other(start_server):
    a = start_radius(start_server, "postgres")
    b = start_radius(start_server, "postgres", share_with=a)
    add_users(a)
    add_client(a)
    ca, cb = Pyrad(a.radius_port), Pyrad(b.radius_port)
    r = ca.auth("alice", PASSWORD)
    assert r.code == packet.AccessChallenge, reply_message(r)
    state = r["State"][0]
    r = cb.auth("alice", hotp(0), state=state)
    assert r.code == packet.AccessAccept, reply_message(r)
    # Used up on every node.
    assert ca.auth("alice", hotp(1), state=state).code == packet.AccessReject
    # radclient too: challenge on b, answer on a.
    code, out = radclient(b.radius_port, [("User-Name", '"alice"'), ("User-Password", f'"{PASSWORD}"')])
    assert code == "Access-Challenge", out
    code, out = radclient(a.radius_port, [("User-Name", '"alice"'), ("User-Password", f'"{hotp(2)}"'),
                                          ("State", rc_state(out))])
    assert code == "Access-Accept", out
    # One OTP is accepted once across nodes.
    assert ca.auth("alice", PASSWORD + hotp(3)).code == packet.AccessAccept
    assert cb.auth("alice", PASSWORD + hotp(3)).code == packet.AccessReject

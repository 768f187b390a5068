"""No secret of the suite in clear at rest or in the logs (docs/operations.md, "Secrets at rest").

A broad scenario on each backend: users with passwords, OATH devices with known seeds given in hex and base64 (and
one imported from a CSV file), OTPs validated, codes sent by SMS (a Twilio-compatible test double, whose first
attempt fails so that the code waits in the outbox for a retry) and by email (a real SMTP server), session tokens, a
U2F registration and sign-in with the soft authenticator, requests with a wrong account key. Then the raw bytes of
the data files (SQLite database, -wal, -shm, taken while the server runs and again after it stopped), a pg_dump of
the PostgreSQL database and the server's logs are searched for every secret, in every encoding it could take: as
sent, hex (both cases), base32 (with and without padding, both cases), base64 and base64url (with and without
padding), UTF-16. Digits-only secrets (OTPs, sent codes) are searched as whole numbers.

Excepted by design: `master.key` (the key itself) and `initial-account.json` (the first account's key, written once
for the operator), and that key on stdout where it is printed once at the first start. The `log` delivery provider,
which writes the message to the log, is not used here.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pyotp
import pytest

from conftest import find_psql
from test_delivery import FakeProvider, MailSink, code_in, free_port
from test_u2f import APP_ID, SoftKey, enroll, sign_in

EXCLUDED_FILES = {"master.key", "initial-account.json"}


def forms(secret: str | bytes) -> dict[str, bytes]:
    """Every encoding in which `secret` could end up in a file or a log."""
    raw = secret.encode() if isinstance(secret, str) else secret
    out = {"raw": raw}
    if isinstance(secret, str) and secret.isdigit():
        return out  # OTPs: searched as whole numbers only (see `find`)
    b32 = base64.b32encode(raw)
    b64 = base64.b64encode(raw)
    u64 = base64.urlsafe_b64encode(raw)
    out.update({
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base32": b32,
        "base32-nopad": b32.rstrip(b"="),
        "base32-lower": b32.rstrip(b"=").lower(),
        "base64": b64,
        "base64-nopad": b64.rstrip(b"="),
        "base64url-nopad": u64.rstrip(b"="),
    })
    if isinstance(secret, str):
        out["utf-16le"] = secret.encode("utf-16-le")
    return out


def find(haystack: bytes, secret: str | bytes) -> list[str]:
    """The encodings of `secret` found in `haystack`."""
    found = []
    for name, needle in forms(secret).items():
        if isinstance(secret, str) and secret.isdigit():
            if re.search(rb"(?<![0-9])" + re.escape(needle) + rb"(?![0-9])", haystack):
                found.append(name)
        elif needle in haystack:
            found.append(name)
    return found


def data_files(server) -> dict[str, bytes]:
    """The raw bytes of every file of the data dir (SQLite database, WAL, shared memory), by name."""
    files = {}
    for p in sorted(Path(server.data_dir).rglob("*")):
        if p.is_file() and p.name not in EXCLUDED_FILES:
            files[p.name] = p.read_bytes()
    return files


def pg_dump(server) -> bytes:
    pg_dump_bin = str(Path(find_psql()).with_name("pg_dump"))
    if not Path(pg_dump_bin).exists():
        pg_dump_bin = shutil.which("pg_dump") or pytest.fail("pg_dump not found", pytrace=False)
    proc = subprocess.run([pg_dump_bin, "--no-owner", "-d", server.database_url], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"COPY public.audit" in proc.stdout, "the dump holds the data"
    return proc.stdout


def test_no_secret_in_clear_in_data_files_dumps_or_logs(start_server, backend, tmp_path):
    provider = FakeProvider().start()
    sink = MailSink()
    from aiosmtpd.controller import Controller

    smtp_port = free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        _scenario(start_server, backend, tmp_path, provider, sink, smtp_port)
    finally:
        smtp.stop()
        provider.stop()


def _scenario(start_server, backend, tmp_path, provider, sink, smtp_port):
    sid, auth_token = "AC" + secrets.token_hex(16), "twilio-" + secrets.token_urlsafe(18)
    server = start_server(backend, config_toml=f"""
[otp]
send_limit = 50

[delivery.sms]
provider = "twilio"
url = "{provider.url}"
account_sid = "{sid}"
auth_token = "{auth_token}"
from = "+15005550006"

[delivery.email]
provider = "smtp"
smtp_url = "smtp://127.0.0.1:{smtp_port}"
from = "Tessera <no-reply@tessera.test>"
""")
    account_key = server.account["spAccountLoginKey"]
    account = server.account["spAccountLoginName"]
    found_secrets: dict[str, str | bytes] = {"Twilio auth token": auth_token}

    def ok(reply: dict) -> dict:
        assert reply["errorCode"] == 0, reply
        return reply

    # Users with passwords; password checks and session tokens.
    for name in ("alice", "bob"):
        pw = "Pw-" + secrets.token_urlsafe(12)
        found_secrets[f"password of {name}"] = pw
        ok(server.call("add_user", username=name, pw=pw, mobile="+1(800)200-8411", email=f"{name}@example.com"))
        ok(server.call("validate_user", username=name, pw=pw))
        token = ok(server.call("create_session_token", username=name, pw=pw))["sessionTokenId"]
        found_secrets[f"session token of {name}"] = token
        ok(server.call("is_session_token_valid", sessionTokenId=token))
    new_pw = "Pw2-" + secrets.token_urlsafe(12)
    found_secrets["changed password"] = new_pw
    ok(server.call("update_user", username="bob", pw=new_pw))
    assert server.call("validate_user", username="bob", pw="wrong-" + new_pw)["errorCode"] != 0

    # OATH devices with known seeds, in hex and in base64; codes computed by pyotp.
    hotp_seed, totp_seed = secrets.token_bytes(20), secrets.token_bytes(32)
    found_secrets["HOTP seed"] = hotp_seed
    found_secrets["TOTP seed"] = totp_seed
    hotp_psn = ok(server.call("add_oath_device", username="alice", secretKeyHex=hotp_seed.hex()))["psn"]
    totp_psn = ok(server.call("add_oath_device", username="bob", otpType=2, algorithm="sha256",
                              secretKeyHexBase64=base64.b64encode(totp_seed).decode()))["psn"]
    hotp = pyotp.HOTP(base64.b32encode(hotp_seed).decode())
    for counter in range(3):
        otp = hotp.at(counter)
        found_secrets[f"HOTP code {counter}"] = otp
        ok(server.call("validate_oath_otp", username="alice", otp=otp, psn=hotp_psn))
    totp = pyotp.TOTP(base64.b32encode(totp_seed).decode(), digest="sha256")
    otp = totp.now()
    found_secrets["TOTP code"] = otp
    ok(server.call("validate_oath_otp", username="bob", otp=otp, psn=totp_psn))
    # A random seed generated by the server and handed out once.
    generated = ok(server.call("add_oath_account", username="carol", OtpType=1))
    for k, v in generated.items():
        if isinstance(v, str) and "secret=" in v:
            found_secrets["generated seed (otpauth URI)"] = re.search(r"secret=([A-Z2-7]+)", v).group(1)

    # An imported hardware token (CSV) with a known seed.
    import_seed = secrets.token_bytes(20)
    found_secrets["imported seed"] = import_seed
    csv = tmp_path / "tokens.csv"
    csv.write_text(f"serial,seed_hex,type,digits,counter_or_step,algorithm\nHW-SECRET-1,{import_seed.hex()},hotp,6,0,SHA1\n")
    proc = server.cli(["device", "import", "--account", account, str(csv), "--json"])
    assert proc.returncode == 0, proc.stderr

    # Codes sent by SMS (the provider fails the first attempt: the code waits in the outbox) and by email.
    provider.mode = 500
    ok(server.call("send_oath_otp", username="alice", deliveryMethod="sms"))
    assert provider.attempts, "the first attempt reached the provider"
    pending_code = code_in(provider.attempts[-1]["form"]["Body"])
    found_secrets["sent code waiting for a retry"] = pending_code
    while_pending = data_files(server) if backend == "sqlite" else {"pg_dump": pg_dump(server)}
    provider.mode = "accept"
    delivered = provider.wait_delivered(1)
    assert code_in(delivered[0]["form"]["Body"]) == pending_code
    ok(server.call("validate_oath_otp", username="alice", otp=pending_code))
    ok(server.call("send_oath_otp", username="bob", deliveryMethod="email"))
    deadline = time.monotonic() + 10
    while not sink.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.messages, "the email arrived"
    mailed = code_in(sink.messages[0].get_body(preferencelist=("plain",)).get_content())
    found_secrets["emailed code"] = mailed
    ok(server.call("validate_oath_otp", username="bob", otp=mailed))

    # U2F: registration and sign-in with the soft authenticator; the ceremonies' session ids are bearer secrets.
    key = SoftKey(tmp_path / "softkey.json")
    req, _resp, reply = enroll(server, key, "alice")
    ok(reply)
    found_secrets["U2F registration session id"] = req["sessionId"]
    sreq, _sresp, sreply = sign_in(server, key, "alice")
    ok(sreply)
    found_secrets["U2F sign session id"] = sreq["sessionId"]

    # Requests with a wrong account key (a guess may be another account's key).
    wrong = "WrongKey-" + secrets.token_urlsafe(24)
    found_secrets["wrong account key"] = wrong
    for _ in range(3):
        assert server.call("find_user", username="alice", spAccountLoginKey=wrong)["errorCode"] == 9000

    found_secrets["account key"] = account_key
    found_secrets["master key"] = (Path(server.data_dir) / "master.key").read_text().strip()
    assert all(v for v in found_secrets.values()), found_secrets

    # Scan: while running (SQLite: the WAL and -shm are live), then after a clean stop.
    running = data_files(server) if backend == "sqlite" else {"pg_dump": pg_dump(server)}
    server.stop()
    stopped = data_files(server) if backend == "sqlite" else {"pg_dump": pg_dump(server)}
    if backend == "sqlite":
        assert any(name.endswith("-wal") for name in running), f"the WAL was scanned: {sorted(running)}"
    places = {f"{name} (while a code waited in the outbox)": data for name, data in while_pending.items()}
    places.update({f"{name} (running)": data for name, data in running.items()})
    places.update({f"{name} (stopped)": data for name, data in stopped.items()})
    places["server log (stderr)"] = server.stderr_text().encode()
    stdout = server.stdout_text().encode()
    leaks = []
    for what, secret in found_secrets.items():
        for place, data in places.items():
            for enc in find(data, secret):
                leaks.append(f"{what} ({enc}) in {place}")
        if what != "account key":  # printed once on stdout at the first start, by design
            for enc in find(stdout, secret):
                leaks.append(f"{what} ({enc}) on stdout")
    assert sum(len(d) for d in places.values()) > 10_000, "the scan read the data"
    assert not leaks, "secrets in clear:\n" + "\n".join(leaks)
    # The scan itself works: the emailed code is in the mail the test received, the account key on stdout.
    assert find(stdout, account_key)

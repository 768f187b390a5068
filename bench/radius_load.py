#!/usr/bin/env python3
"""bench/radius_load.py: RADIUS load for bench/run (standard library only).

  seed   add the users radbench000.. through the JSON API: each a password and an HOTP device (SHA-1, 6 digits) with
         the seed SHA-1("tessera-radius-bench-<i>")
  load   a closed loop of Access-Requests over UDP (asyncio): `--concurrency` workers, each with its own socket and its
         own users, one request in flight at a time; User-Password = the password followed by a fresh HOTP code
         (or, with --otp-only, the code alone), a Message-Authenticator on every request, the Response Authenticator
         and Message-Authenticator of every reply checked. Prints one line
         `BENCHRADIUS requests=.. ok=.. failed=.. (timeouts included) timeouts=.. rps=.. ok_rps=.. p50_ms=.. p99_ms=.. duration_s=..`.

Counters: user i's next code is at counter `--base` + (requests already made for it); `load` writes the next free base
to `--state` so that a second run (e.g. --otp-only after password+OTP) continues with fresh codes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import struct
import time
import urllib.request

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"


def username(i: int) -> str:
    return f"radbench{i:03d}"


def password(i: int) -> str:
    return f"Radius-bench-pw-{i}!"


def seed(i: int) -> bytes:
    return hashlib.sha1(f"tessera-radius-bench-{i}".encode()).digest()


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


# -- seeding ------------------------------------------------------------------------------------------------------------


def call(url: str, account: dict, type_: str, **fields) -> dict:
    body = json.dumps({"type": type_, **account, **fields}).encode()
    req = urllib.request.Request(url + API_PATH, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def cmd_seed(a) -> int:
    with open(a.account) as f:
        acc = json.load(f)
    account = {"spAccountLoginName": acc["spAccountLoginName"], "spAccountLoginKey": acc["spAccountLoginKey"]}
    failed = 0
    for i in range(a.users):
        r = call(a.url, account, "add_user", username=username(i), pw=password(i))
        if r.get("errorCode") not in (0, 9105):
            failed += 1
            continue
        r = call(a.url, account, "add_oath_device", username=username(i), secretKeyHex=seed(i).hex(), OtpType=1,
                 OtpLength=6, psn=f"RADBENCH{i:03d}")
        if r.get("errorCode") not in (0, 9108):
            failed += 1
    print(json.dumps({"users": a.users, "failed": failed}))
    return 0 if failed == 0 else 1


# -- the wire format (RFC 2865, RFC 3579) --------------------------------------------------------------------------------


def hide(pw: bytes, secret: bytes, authenticator: bytes) -> bytes:
    pw += b"\x00" * (-len(pw) % 16 or (16 if not pw else 0))
    out, prev = b"", authenticator
    for i in range(0, len(pw), 16):
        key = hashlib.md5(secret + prev).digest()
        block = bytes(x ^ y for x, y in zip(pw[i:i + 16], key))
        out, prev = out + block, block
    return out


def access_request(ident: int, user: str, pw: str, secret: bytes) -> tuple[bytes, bytes]:
    auth = os.urandom(16)
    attrs = bytes([80, 18]) + bytes(16)
    for t, v in ((1, user.encode()), (2, hide(pw.encode(), secret, auth))):
        attrs += bytes([t, len(v) + 2]) + v
    pkt = bytes([1, ident]) + struct.pack("!H", 20 + len(attrs)) + auth + attrs
    mac = hmac.new(secret, pkt, "md5").digest()
    return pkt[:22] + mac + pkt[38:], auth


def reply_ok(reply: bytes, ident: int, auth: bytes, secret: bytes) -> int | None:
    """The reply's code if its Response Authenticator and its (first-attribute) Message-Authenticator verify."""
    if len(reply) < 38 or reply[1] != ident:
        return None
    if hashlib.md5(reply[:4] + auth + reply[20:] + secret).digest() != reply[4:20]:
        return None
    if reply[20] != 80 or reply[21] != 18:
        return None
    zeroed = reply[:4] + auth + reply[20:22] + bytes(16) + reply[38:]
    if not hmac.compare_digest(hmac.new(secret, zeroed, "md5").digest(), reply[22:38]):
        return None
    return reply[0]


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiter: asyncio.Future | None = None

    def datagram_received(self, data, addr):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def worker(k: int, a, users: list[int], counters: dict[int, int], stats: dict, deadline: float):
    loop = asyncio.get_running_loop()
    secret = a.secret.encode()
    transport, proto = await loop.create_datagram_endpoint(Endpoint, local_addr=(a.source, 0),
                                                           remote_addr=(a.host, a.port))
    ident = k % 256
    try:
        j = 0
        while time.monotonic() < deadline:
            i = users[j % len(users)]
            j += 1
            code = hotp(seed(i), counters[i])
            counters[i] += 1
            pw = code if a.otp_only else password(i) + code
            ident = (ident + 1) % 256
            pkt, auth = access_request(ident, username(i), pw, secret)
            proto.waiter = loop.create_future()
            t0 = time.monotonic()
            transport.sendto(pkt)
            try:
                reply = await asyncio.wait_for(proto.waiter, a.timeout)
            except asyncio.TimeoutError:
                stats["timeouts"] += 1
                continue
            stats["lat"].append(time.monotonic() - t0)
            if reply_ok(reply, ident, auth, secret) == 2:
                stats["ok"] += 1
            else:
                stats["failed"] += 1
    finally:
        transport.close()


def cmd_load(a) -> int:
    base = a.base
    if a.state and os.path.exists(a.state):
        with open(a.state) as f:
            base = max(base, int(f.read().strip() or 0))
    counters = {i: base for i in range(a.users)}
    stats = {"ok": 0, "failed": 0, "timeouts": 0, "lat": []}

    async def run():
        deadline = time.monotonic() + a.duration
        c = min(a.concurrency, a.users)
        await asyncio.gather(*(worker(k, a, list(range(k, a.users, c)), counters, stats, deadline) for k in range(c)))

    t0 = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - t0
    if a.state:
        with open(a.state, "w") as f:
            f.write(str(max(counters.values()) + 1))
    lat = sorted(stats["lat"])
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    n = stats["ok"] + stats["failed"] + stats["timeouts"]
    print(f"BENCHRADIUS requests={n} ok={stats['ok']} failed={stats['failed'] + stats['timeouts']} timeouts={stats['timeouts']} "
          f"rps={n / elapsed:.1f} ok_rps={stats['ok'] / elapsed:.1f} p50_ms={q(0.5):.2f} p99_ms={q(0.99):.2f} "
          f"duration_s={elapsed:.1f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--url", required=True)
    s.add_argument("--account", required=True, help="initial-account.json")
    s.add_argument("--users", type=int, default=64)
    s.set_defaults(fn=cmd_seed)
    l_ = sub.add_parser("load")
    l_.add_argument("--host", default="127.0.0.1")
    l_.add_argument("--port", type=int, required=True)
    l_.add_argument("--source", default="127.0.0.1", help="local address to send from (the NAS address)")
    l_.add_argument("--secret", required=True)
    l_.add_argument("--users", type=int, default=64)
    l_.add_argument("--concurrency", type=int, default=32)
    l_.add_argument("--duration", type=float, default=10)
    l_.add_argument("--timeout", type=float, default=5)
    l_.add_argument("--base", type=int, default=0, help="first HOTP counter")
    l_.add_argument("--state", help="file holding the next free counter (read and written)")
    l_.add_argument("--otp-only", action="store_true", help="User-Password is the code alone (an --otp-only client)")
    l_.set_defaults(fn=cmd_load)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    raise SystemExit(main())

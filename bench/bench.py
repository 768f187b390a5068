#!/usr/bin/env python3
"""bench/bench.py: the Python half of bench/run (runs in bench/.venv: aiohttp, cryptography).

  start    spawn a server detached, time exec -> first `GET /healthz` 200, print {"pid":..,"startup_ms":..}
  call     one JSON API call, print the reply (availability probes)
  sessions create session tokens for users 0..K-1, write "token<TAB>username" lines
  pwusers  add the password users benchpw000.. (argon2id hashing: slow on purpose)
  u2f      register a software U2F key per user, then a closed loop of pre_sign + sign pairs (or skip, saying why)

Everything talks to the public JSON API only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s: str) -> bytes:
    s = s.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_account(path: str) -> dict:
    with open(path) as f:
        a = json.load(f)
    return {"spAccountLoginName": a["spAccountLoginName"], "spAccountLoginKey": a["spAccountLoginKey"]}


# ---------------------------------------------------------------------------------------------------------------------
# start


def healthz_ok(host: str, port: int, path: str = "/healthz") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
            return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def cmd_start(a) -> int:
    env = dict(os.environ)
    for kv in a.env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    log = open(a.log, "ab")
    t0 = time.perf_counter()
    p = subprocess.Popen(a.cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=a.cwd or None)
    deadline = t0 + a.timeout
    while time.perf_counter() < deadline:
        if healthz_ok(a.host, a.port, a.health):
            ms = (time.perf_counter() - t0) * 1000
            print(json.dumps({"pid": p.pid, "startup_ms": round(ms, 1)}))
            return 0
        if p.poll() is not None:
            print(json.dumps({"pid": p.pid, "error": f"exited with status {p.returncode} before /healthz answered"}))
            return 1
        time.sleep(0.002)
    print(json.dumps({"pid": p.pid, "error": f"/healthz did not answer 200 within {a.timeout} s"}))
    return 1


# ---------------------------------------------------------------------------------------------------------------------
# HTTP client


class Api:
    def __init__(self, base: str, account: dict, concurrency: int = 64):
        import aiohttp

        self.url = base.rstrip("/") + API_PATH
        self.account = account
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def call(self, type_: str, **fields) -> dict:
        body = json.dumps({"type": type_, **self.account, **fields})
        async with self.session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
        try:
            return json.loads(text)
        except ValueError:
            return {"errorCode": -1, "errorMessage": f"HTTP {r.status}: {text[:200]}"}

    async def close(self):
        await self.session.close()


async def bounded(n: int, concurrency: int, fn):
    """Runs fn(i) for i in range(n) with at most `concurrency` in flight; returns the results in order."""
    results: list = [None] * n
    it = iter(range(n))

    async def worker():
        for i in it:
            results[i] = await fn(i)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return results


def cmd_call(a) -> int:
    async def run():
        api = Api(a.url, load_account(a.account))
        try:
            fields = json.loads(a.fields) if a.fields else {}
            print(json.dumps(await api.call(a.type, **fields)))
        finally:
            await api.close()

    asyncio.run(run())
    return 0


def cmd_sessions(a) -> int:
    from gen_bodies import username

    async def run():
        api = Api(a.url, load_account(a.account), a.concurrency)
        try:
            async def one(i):
                return await api.call("create_session_token", username=username(i), sessionTokenDurationMinutes=43200)

            res = await bounded(a.count, a.concurrency, one)
        finally:
            await api.close()
        bad = [r for r in res if r.get("errorCode") != 0]
        with open(a.out, "w") as f:
            for i, r in enumerate(res):
                if r.get("errorCode") == 0:
                    f.write(f"{r['sessionTokenId']}\t{username(i)}\n")
        print(json.dumps({"created": len(res) - len(bad), "failed": len(bad), "first_error": bad[0] if bad else None}))
        return 0 if not bad else 1

    return asyncio.run(run())


def cmd_pwusers(a) -> int:
    async def run():
        api = Api(a.url, load_account(a.account), a.concurrency)
        try:
            async def one(k):
                return await api.call("add_user", username=f"benchpw{k:03d}", pw=f"Bench-pw-{k}!")

            res = await bounded(a.count, a.concurrency, one)
        finally:
            await api.close()
        bad = [r for r in res if r.get("errorCode") not in (0, 9105)]
        print(json.dumps({"created": len(res) - len(bad), "failed": len(bad), "first_error": bad[0] if bad else None}))
        return 0 if not bad else 1

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------------------------------
# U2F: a software key (P-256) speaking the raw FIDO U2F messages


class SoftU2F:
    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import datetime

        self.ec, self.hashes, self.serialization = ec, hashes, serialization
        self.att_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tessera bench soft U2F")])
        now = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.att_key.public_key())
            .serial_number(1)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650 * 3))
            .sign(self.att_key, hashes.SHA256())
        )
        self.att_der = cert.public_bytes(serialization.Encoding.DER)
        self.keys: dict[bytes, tuple] = {}  # key handle -> (private key, counter)

    def _pub(self, key) -> bytes:
        return key.public_key().public_bytes(self.serialization.Encoding.X962,
                                             self.serialization.PublicFormat.UncompressedPoint)

    def _sign(self, key, data: bytes) -> bytes:
        return key.sign(data, self.ec.ECDSA(self.hashes.SHA256()))

    def register(self, app_id: str, challenge: str) -> tuple[str, str]:
        key = self.ec.generate_private_key(self.ec.SECP256R1())
        kh = os.urandom(64)
        self.keys[kh] = [key, 0]
        client_data = json.dumps({"typ": "navigator.id.finishEnrollment", "challenge": challenge,
                                  "origin": app_id}, separators=(",", ":")).encode()
        pub = self._pub(key)
        signed = b"\x00" + hashlib.sha256(app_id.encode()).digest() + hashlib.sha256(client_data).digest() + kh + pub
        sig = self._sign(self.att_key, signed)
        reg = b"\x05" + pub + bytes([len(kh)]) + kh + self.att_der + sig
        return b64u(reg), b64u(client_data)

    def sign(self, app_id: str, challenge: str, key_handle: str) -> tuple[str, str]:
        kh = b64u_dec(key_handle)
        entry = self.keys[kh]
        entry[1] += 1
        counter = entry[1].to_bytes(4, "big")
        client_data = json.dumps({"typ": "navigator.id.getAssertion", "challenge": challenge, "origin": app_id},
                                 separators=(",", ":")).encode()
        signed = hashlib.sha256(app_id.encode()).digest() + b"\x01" + counter + hashlib.sha256(client_data).digest()
        sig = self._sign(entry[0], signed)
        return b64u(b"\x01" + counter + sig), b64u(client_data)


def _first(reply: dict, key: str) -> dict | None:
    v = reply.get(key)
    if isinstance(v, list) and v:
        return v[0]
    return None


def cmd_u2f(a) -> int:
    from gen_bodies import username

    app_id = "https://bench.tessera.invalid"

    def skip(why: str) -> int:
        print("BENCHU2F skipped=" + json.dumps(why))
        return 0

    async def run() -> int:
        api = Api(a.url, load_account(a.account), a.concurrency)
        token = SoftU2F()
        try:
            probe = await api.call("pre_sign", username=username(0), appId=app_id)
            if probe.get("errorCode") == 9100:
                return skip("the U2F operations are not implemented yet (pre_sign answers 9100 unknown type)")

            # registration: pre_enroll + enroll per user (users must exist: they are the seeded bench users)
            async def register(i):
                u = username(i)
                r = await api.call("pre_enroll", username=u, appId=app_id)
                req = _first(r, "RegisterRequest")
                if r.get("errorCode") != 0 or not req:
                    return f"pre_enroll: {r}"
                reg, cd = token.register(req.get("appId", app_id), req["challenge"])
                e = await api.call("enroll", username=u, sessionId=req["sessionId"], registrationData=reg,
                                   clientData=cd, securityKeyName="bench", version="U2F_V2")
                if e.get("errorCode") != 0:
                    return f"enroll: {e}"
                return None

            errs = [e for e in await bounded(a.users, min(a.concurrency, 32), register) if e]
            if errs:
                return skip(f"{len(errs)} of {a.users} registrations failed, e.g. {errs[0][:300]}")

            lat: list[float] = []
            failures: dict[str, int] = {}
            ok = 0
            stop_at = time.perf_counter() + a.duration
            # closed loop: worker w owns users w, w+C, ...; one ceremony at a time per user keeps counters monotonic
            async def worker(w):
                nonlocal ok
                mine = list(range(w, a.users, a.concurrency)) or [w % a.users]
                k = 0
                while time.perf_counter() < stop_at:
                    u = username(mine[k % len(mine)])
                    k += 1
                    t = time.perf_counter()
                    r = await api.call("pre_sign", username=u, appId=app_id)
                    sr = _first(r, "SignRequest")
                    if r.get("errorCode") != 0 or not sr:
                        failures[f"pre_sign:{r.get('errorCode')}"] = failures.get(f"pre_sign:{r.get('errorCode')}", 0) + 1
                        continue
                    sig, cd = token.sign(sr.get("appId", app_id), sr["challenge"], sr["keyHandle"])
                    s = await api.call("sign", username=u, sessionId=sr["sessionId"], clientData=cd, signatureData=sig)
                    if s.get("errorCode") == 0:
                        ok += 1
                        lat.append((time.perf_counter() - t) * 1000)
                    else:
                        key = f"sign:{s.get('errorCode')}"
                        failures[key] = failures.get(key, 0) + 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(a.concurrency)))
            dur = time.perf_counter() - t0
            lat.sort()

            def pct(p):
                return lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else 0.0

            nfail = sum(failures.values())
            print(f"BENCHU2F pairs_ok={ok} failed={nfail} duration_s={dur:.3f} ok_rps={ok / dur:.1f} "
                  f"p50_ms={pct(50):.3f} p99_ms={pct(99):.3f} mean_ms={statistics.fmean(lat) if lat else 0:.3f} "
                  f"concurrency={a.concurrency} codes={','.join(f'{k}:{v}' for k, v in sorted(failures.items())) or '-'}")
            return 0
        finally:
            await api.close()

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd_name", required=True)

    s = sub.add_parser("start")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--env", action="append")
    s.add_argument("--cwd")
    s.add_argument("--health", default="/healthz")
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_start)

    for name, fn in (("call", cmd_call), ("sessions", cmd_sessions), ("pwusers", cmd_pwusers), ("u2f", cmd_u2f)):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--account", required=True)
        p.add_argument("--concurrency", type=int, default=32)
        p.add_argument("--count", type=int, default=1000)
        p.add_argument("--users", type=int, default=100)
        p.add_argument("--duration", type=float, default=10)
        p.add_argument("--out")
        if name == "call":
            p.add_argument("type")
            p.add_argument("fields", nargs="?")
        p.set_defaults(fn=fn)

    a = ap.parse_args()
    if a.cmd_name == "start":
        if a.cmd and a.cmd[0] == "--":
            a.cmd = a.cmd[1:]
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())

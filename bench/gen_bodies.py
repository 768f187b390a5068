#!/usr/bin/env python3
"""bench/gen_bodies.py: writes the request bodies wrk sends (one per line; bench/lua/bodies.lua reads them).

Every benchmark user is derived from its index i, so that every tool computes the same values without sharing state:

    username  bench0000042          psn  BENCH0000042
    seed      SHA-1("tessera-bench-seed-42")   (20 bytes, the RFC 4226 size; HOTP SHA-1, 6 digits, counter from 0)

Sub-commands (all write to --out, print the number of lines):

  seed-oath      add_oath_account per user (user + HOTP device with the known seed), or with --split the two-step
                 fallback add_user / add_oath_device (two files: --out and --out2)
  seed-users     add_user only (when the OATH operations are not there yet)
  validate       validate_oath_otp with fresh valid codes, counter-major: counter B for users 0..N-1, then B+1, ...
                 (--count lines in all), so that no user's later code can overtake an earlier one across wrk threads
  session        is_session_token_valid for the tokens in --tokens (one per line), cycled up to --count
  validate-user  validate_user with the right password of the --pw-users password users, cycled up to --count
  send           send_oath_otp (deliveryMethod email, to the log provider) cycling over the users, up to --count
  hello          --count copies of a body the size of a validate request (the axum baseline ignores it)
  pi-tokens      privacyIDEA CSV token import file: serial, key, hotp, 6, 0 (same seeds as Tessera's users)
  pi-validate    privacyIDEA /validate/check form bodies serial=...&pass=..., counter-major like `validate`
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import struct
import sys


def username(i: int) -> str:
    return f"bench{i:07d}"


def psn(i: int) -> str:
    return f"BENCH{i:07d}"


def pi_serial(i: int) -> str:
    return f"PIBENCH{i:07d}"


def seed(i: int) -> bytes:
    return hashlib.sha1(f"tessera-bench-seed-{i}".encode()).digest()


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return str(code).zfill(digits)


def load_account(path: str) -> dict:
    with open(path) as f:
        a = json.load(f)
    return {"spAccountLoginName": a["spAccountLoginName"], "spAccountLoginKey": a["spAccountLoginKey"]}


def dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def counter_major(n_users: int, base: int, count: int, first_user: int = 0):
    """(user, counter) pairs: every user's counter `base`, then every user's base+1, ...; `count` pairs in all."""
    made = 0
    c = base
    while made < count:
        for u in range(first_user, first_user + n_users):
            if made >= count:
                return
            yield u, c
            made += 1
        c += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what")
    ap.add_argument("--account", help="initial-account.json of the Tessera server")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--first-user", type=int, default=0)
    ap.add_argument("--base", type=int, default=0, help="first HOTP counter (validate, pi-validate)")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--tokens", help="file of session token ids, one per line")
    ap.add_argument("--pw-users", type=int, default=20)
    ap.add_argument("--split", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--out2")
    a = ap.parse_args()

    acct = load_account(a.account) if a.account else {}
    lines = 0
    with open(a.out, "w") as out:
        w = out.write
        if a.what == "seed-oath":
            out2 = open(a.out2, "w") if a.split else None
            for i in range(a.first_user, a.first_user + a.users):
                user = {
                    "username": username(i),
                    "email": f"{username(i)}@bench.invalid",
                    "mobile": "+1(555)010-0000",
                }
                dev = {
                    "deviceType": 13,
                    "OtpType": 1,
                    "OtpLength": 6,
                    "psn": psn(i),
                    "secretKeyHex": seed(i).hex(),
                }
                if a.split:
                    w(dumps({"type": "add_user", **acct, **user}) + "\n")
                    out2.write(dumps({"type": "add_oath_device", **acct, "username": username(i), **dev}) + "\n")
                else:
                    w(dumps({"type": "add_oath_account", **acct, **user, **dev}) + "\n")
                lines += 1
            if out2:
                out2.close()
        elif a.what == "seed-users":
            for i in range(a.first_user, a.first_user + a.users):
                w(dumps({"type": "add_user", **acct, "username": username(i), "email": f"{username(i)}@bench.invalid",
                         "mobile": "+1(555)010-0000"}) + "\n")
                lines += 1
        elif a.what == "validate":
            for u, c in counter_major(a.users, a.base, a.count, a.first_user):
                w(dumps({"type": "validate_oath_otp", **acct, "username": username(u), "otp": hotp(seed(u), c),
                         "psn": psn(u)}) + "\n")
                lines += 1
        elif a.what == "session":
            with open(a.tokens) as f:
                toks = [t.strip().split("\t") for t in f if t.strip()]
            bodies = [dumps({"type": "is_session_token_valid", **acct, "sessionTokenId": t[0], "username": t[1]})
                      for t in toks]
            for k in range(a.count):
                w(bodies[k % len(bodies)] + "\n")
                lines += 1
        elif a.what == "validate-user":
            bodies = [dumps({"type": "validate_user", **acct, "username": f"benchpw{k:03d}", "pw": f"Bench-pw-{k}!"})
                      for k in range(a.pw_users)]
            for k in range(a.count):
                w(bodies[k % len(bodies)] + "\n")
                lines += 1
        elif a.what == "send":
            for k in range(a.count):
                u = a.first_user + (k % a.users)
                w(dumps({"type": "send_oath_otp", **acct, "username": username(u), "deliveryMethod": "email"}) + "\n")
                lines += 1
        elif a.what == "hello":
            body = dumps({"type": "validate_oath_otp", **acct, "spAccountLoginName": "default",
                          "spAccountLoginKey": "x" * 43, "username": username(0), "otp": "123456", "psn": psn(0)})
            for _ in range(a.count):
                w(body + "\n")
                lines += 1
        elif a.what == "pi-tokens":
            for i in range(a.first_user, a.first_user + a.users):
                w(f"{pi_serial(i)}, {seed(i).hex()}, hotp, 6, 0\n")
                lines += 1
        elif a.what == "pi-validate":
            for u, c in counter_major(a.users, a.base, a.count, a.first_user):
                w(f"serial={pi_serial(u)}&pass={hotp(seed(u), c)}\n")
                lines += 1
        else:
            ap.error(f"unknown body kind {a.what!r}")
    print(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

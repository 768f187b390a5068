#!/usr/bin/env python3
"""bench/bulk_seed.py: BENCH-ONLY SHORTCUT. Writes users + HOTP devices straight into a stopped server's SQLite file.

Why: through the API every user costs two fsync'd commits (add_oath_account = create user + create device), so
a million users take the better part of an hour on a small VM, which would be the benchmark of seeding, not of
serving. bench/run seeds the first BENCH_API_SEED users (default 20,000) through the public API and uses this
script only for the rest, and only on SQLite, with the server stopped.

How it stays honest:
- every padded row is a copy of an API-created row (user bench0000000 and its device), all columns included,
  whatever the schema holds; only the identifying columns change (id, username/username_key, email/email_key,
  psn, seed, user_id, counter), so the rows look exactly like the API's;
- seeds are sealed the way the server seals them (AES-256-GCM under the data dir's master key, nonce ‖ ct+tag,
  AAD "tessera-seed-v1|<account>|<psn>"), so padded users validate like any other. bench/run checks that with a
  fresh code of the last padded user through the API after the restart; if the server's format has changed, it says
  so and restricts the validate runs to the API-seeded users.

usage: bulk_seed.py --db DATA/tessera.db --master-key DATA/master.key --from N0 --to N
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gen_bodies import psn, seed, username


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--master-key", required=True)
    ap.add_argument("--from", dest="first", type=int, required=True)
    ap.add_argument("--to", dest="last", type=int, required=True, help="exclusive")
    a = ap.parse_args()
    if a.last <= a.first:
        print("nothing to add")
        return 0
    with open(a.master_key) as f:
        aead = AESGCM(bytes.fromhex(f.read().strip()))

    t0 = time.perf_counter()
    con = sqlite3.connect(a.db, isolation_level=None)
    con.execute("pragma foreign_keys = on")
    ucols = [r[1] for r in con.execute("pragma table_info(users)")]
    dcols = [r[1] for r in con.execute("pragma table_info(devices)")]
    urow = con.execute("select * from users where username_key = ?", (username(0).lower(),)).fetchone()
    if urow is None:
        print("bulk_seed: the template user bench0000000 is missing (API seeding failed?)", file=sys.stderr)
        return 1
    tu = dict(zip(ucols, urow))
    drow = con.execute("select * from devices where user_id = ? and psn = ?", (tu["id"], psn(0))).fetchone()
    if drow is None:
        print("bulk_seed: the template device BENCH0000000 is missing", file=sys.stderr)
        return 1
    td = dict(zip(dcols, drow))
    account = tu["account_id"]
    email_key_lower = "email_key" in tu and tu["email_key"] == tu.get("email", "").lower()

    next_uid = con.execute("select coalesce(max(id), 0) + 1 from users").fetchone()[0]
    next_did = con.execute("select coalesce(max(id), 0) + 1 from devices").fetchone()[0]
    uins = f"insert into users ({', '.join(ucols)}) values ({', '.join('?' * len(ucols))})"
    dins = f"insert into devices ({', '.join(dcols)}) values ({', '.join('?' * len(dcols))})"

    def users_rows(lo, hi):
        for i in range(lo, hi):
            u = dict(tu)
            u["id"] = next_uid + (i - a.first)
            u["username"] = username(i)
            u["username_key"] = username(i).lower()
            if "email" in u:
                u["email"] = f"{username(i)}@bench.invalid"
            if "email_key" in u:
                u["email_key"] = u["email"].lower() if email_key_lower else u["email_key"]
            yield tuple(u[c] for c in ucols)

    def device_rows(lo, hi):
        for i in range(lo, hi):
            d = dict(td)
            d["id"] = next_did + (i - a.first)
            d["user_id"] = next_uid + (i - a.first)
            d["psn"] = psn(i)
            nonce = os.urandom(12)
            d["seed"] = nonce + aead.encrypt(nonce, seed(i), f"tessera-seed-v1|{account}|{psn(i)}".encode())
            if "counter" in d:
                d["counter"] = 0
            for k in ("fail_count", "locked_until", "drift"):
                if k in d:
                    d[k] = 0
            yield tuple(d[c] for c in dcols)

    con.execute("begin")
    step = 100_000
    for lo in range(a.first, a.last, step):
        hi = min(a.last, lo + step)
        con.executemany(uins, users_rows(lo, hi))
        con.executemany(dins, device_rows(lo, hi))
    con.execute("commit")
    con.execute("pragma wal_checkpoint(truncate)")
    con.close()
    print(f"bulk_seed: added {a.last - a.first} users + devices in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The audit trail from the operator's side (docs/operations.md, "Audit trail"): `tessera audit verify` on an intact
trail, on rows altered, removed and inserted with plain SQL (sqlite3 / psql), and after `tessera audit prune`;
wrong-key traffic counted in one row per source address and minute; `delete_user` keeps the history."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import find_psql


def sql(server, statement: str) -> str:
    """Runs SQL on the server's database behind its back, as someone with write access to it would."""
    if server.backend == "sqlite":
        con = sqlite3.connect(Path(server.data_dir) / "tessera.db", timeout=10)
        try:
            rows = con.execute(statement).fetchall()
            con.commit()
        finally:
            con.close()
        return "\n".join("|".join(str(v) for v in r) for r in rows)
    proc = subprocess.run([find_psql(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", server.database_url, "-c", statement],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def verify(server) -> tuple[int, str]:
    proc = server.cli(["audit", "verify"])
    return proc.returncode, proc.stdout + proc.stderr


def wait_rows(server, n: int) -> list[dict]:
    """The account's audit rows (oldest first) once at least n are written (the writer batches every 50 ms)."""
    deadline = time.monotonic() + 10
    while True:
        out = server.cli(["audit", "list", "--json", "--limit", "1000"], check=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [r for r in rows if r["account"] == server.account["spAccountLoginName"] and r["errorCode"] != 9000]
        if len(mine) >= n or time.monotonic() > deadline:
            return list(reversed(mine))
        time.sleep(0.1)


def test_verify_detects_altered_removed_inserted_rows_and_survives_prune(server):
    for i in range(6):
        assert server.call("add_user", username=f"user{i}")["errorCode"] == 0
    rows = wait_rows(server, 6)
    assert len(rows) >= 6
    ids = [r["id"] for r in rows]
    rc, out = verify(server)
    assert rc == 0 and "intact" in out, out

    sql(server, f"UPDATE audit SET username = 'mallory' WHERE id = {ids[2]}")
    rc, out = verify(server)
    assert rc != 0 and f"row {ids[2]} was altered" in out, out
    sql(server, f"UPDATE audit SET username = 'user2' WHERE id = {ids[2]}")
    assert verify(server)[0] == 0

    sql(server, f"CREATE TABLE kept AS SELECT * FROM audit WHERE id = {ids[3]}")
    sql(server, f"DELETE FROM audit WHERE id = {ids[3]}")
    rc, out = verify(server)
    assert rc != 0 and f"row {ids[3]} was removed" in out, out
    sql(server, "INSERT INTO audit SELECT * FROM kept")
    sql(server, "DROP TABLE kept")
    assert verify(server)[0] == 0

    fake = 10_000_000
    sql(server, f"INSERT INTO audit (id, at_ms, account_id, account_name, op, username, psn, code, source, duration_us,"
                f" req_count, seq, prev_id, hash) SELECT {fake}, at_ms, account_id, account_name, op, 'mallory', psn, 0,"
                f" source, duration_us, req_count, seq + 1, id, hash FROM audit WHERE id = {ids[-1]}")
    rc, out = verify(server)
    assert rc != 0 and f"row {fake} was inserted" in out, out
    sql(server, f"DELETE FROM audit WHERE id = {fake}")
    assert verify(server)[0] == 0

    # Retention: everything up to now goes; the chain goes on from its anchor and still catches tampering.
    time.sleep(1.1)
    pruned = server.cli(["audit", "prune", "--before", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())], check=True)
    assert re.search(r"pruned [1-9]\d* audit rows", pruned.stdout), pruned.stdout
    assert verify(server)[0] == 0
    for i in range(3):
        assert server.call("find_user", username=f"user{i}")["errorCode"] == 0
    later = [r for r in wait_rows(server, 3) if r["id"] > ids[-1]]
    assert len(later) >= 3, later
    rc, out = verify(server)
    assert rc == 0, out
    sql(server, f"UPDATE audit SET code = 1 WHERE id = {later[1]['id']}")
    rc, out = verify(server)
    assert rc != 0 and f"row {later[1]['id']} was altered" in out, out


def test_wrong_key_traffic_is_one_row_per_source_and_minute(server):
    started = time.time()
    for i in range(40):
        r = server.call("find_user", username="x" * 5000, spAccountLoginKey=f"wrong-{i}")
        assert r["errorCode"] == 9000
    minutes = int(time.time() // 60) - int(started // 60) + 1
    deadline = time.monotonic() + 10
    while True:
        out = server.cli(["audit", "list", "--json"], check=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        failed = [r for r in rows if r["errorCode"] == 9000]
        if sum(r["count"] for r in failed) >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sum(r["count"] for r in failed) == 40, failed
    assert 1 <= len(failed) <= minutes, failed
    assert all(r["source"] == "127.0.0.1" and len(r["username"]) <= 128 for r in failed), failed


def test_delete_user_keeps_history(server):
    assert server.call("add_user", username="leaver", pw="Pw-leaver-1")["errorCode"] == 0
    assert server.call("validate_user", username="leaver", pw="Pw-leaver-1")["errorCode"] == 0
    assert len([r for r in wait_rows(server, 2) if r["username"] == "leaver"]) == 2
    assert server.call("delete_user", username="leaver", removeRelated=True)["errorCode"] == 0
    rows = wait_rows(server, 3)
    assert len([r for r in rows if r["username"] == "leaver"]) == 3, rows
    assert verify(server)[0] == 0

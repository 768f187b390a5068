"""Hardware tokens imported by the operator's CLI (docs/api.md) validate over the API once assigned.

A CSV seed file with the RFC 4226 test seed is imported into the running server's account with `tessera device
import`, bound to a user with `assign_device`, and the RFC 4226 Appendix D reference codes validate in order.
"""

from __future__ import annotations

import json

RFC4226_SEED_HEX = b"12345678901234567890".hex()
# RFC 4226, Appendix D: HOTP values for counters 0..9 with the seed above (6 digits, SHA-1).
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


def ok(reply: dict) -> dict:
    assert reply["errorCode"] == 0, reply
    return reply


def test_imported_hotp_token_validates_after_assign(server, tmp_path):
    account = server.account["spAccountLoginName"]
    seeds = tmp_path / "tokens.csv"
    seeds.write_text(
        "# vendor batch\n"
        "serial,seed_hex,type,digits,counter_or_step,algorithm\n"
        f"HW-IMP-1,{RFC4226_SEED_HEX},hotp,6,0,SHA1\n"
        f"HW-IMP-2,{RFC4226_SEED_HEX},hotp,6,5\n"
    )
    proc = server.cli(["device", "import", "--account", account, str(seeds), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["imported"] == 2

    listed = server.cli(["device", "list", "--account", account, "--unassigned", "--json"], check=True)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["psn"], r["deviceType"], r["otpType"], r["userId"]) for r in rows] == [
        ("HW-IMP-1", 14, 1, None),
        ("HW-IMP-2", 14, 1, None),
    ]

    ok(server.call("add_user", username="ivan"))
    ok(server.call("assign_device", username="ivan", psn="HW-IMP-1", force=0))
    for code in RFC4226_CODES[:4]:
        ok(server.call("validate_oath_otp", username="ivan", otp=code, psn="HW-IMP-1"))
    assert server.call("validate_oath_otp", username="ivan", otp=RFC4226_CODES[3], psn="HW-IMP-1")["errorCode"] == 9002

    # The second token's next counter is 5: the codes before it are spent, the code for 5 works.
    ok(server.call("add_user", username="jane"))
    ok(server.call("assign_device", username="jane", psn="HW-IMP-2", force=0))
    assert server.call("validate_oath_otp", username="jane", otp=RFC4226_CODES[2], psn="HW-IMP-2")["errorCode"] != 0
    ok(server.call("validate_oath_otp", username="jane", otp=RFC4226_CODES[5], psn="HW-IMP-2"))

    listed = server.cli(["device", "list", "--account", account, "--json"], check=True)
    owners = {r["psn"]: r["username"] for r in map(json.loads, listed.stdout.splitlines())}
    assert owners == {"HW-IMP-1": "ivan", "HW-IMP-2": "jane"}

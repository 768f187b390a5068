"""Operator account actions against a running server: a rotated key and a disabled account take effect on the running
node within a second (the server reuses an account read for at most 1 s), and a created account works at once."""

from __future__ import annotations

import json
import time


def test_rotate_disable_enable_take_effect_on_a_running_server(server):
    old_key = server.account["spAccountLoginKey"]
    assert server.call("find_users")["errorCode"] == 0
    rotated = json.loads(server.cli(["account", "rotate-key", "default", "--json"], check=True).stdout)
    assert rotated["spAccountLoginName"] == "default"
    assert rotated["spAccountLoginKey"] != old_key
    time.sleep(1.2)
    assert server.call("find_users", spAccountLoginKey=old_key)["errorCode"] == 9000
    assert server.call("find_users", spAccountLoginKey=rotated["spAccountLoginKey"])["errorCode"] == 0

    server.cli(["account", "disable", "default"], check=True)
    time.sleep(1.2)
    assert server.call("find_users", spAccountLoginKey=rotated["spAccountLoginKey"])["errorCode"] == 9000
    server.cli(["account", "enable", "default"], check=True)
    time.sleep(1.2)
    assert server.call("find_users", spAccountLoginKey=rotated["spAccountLoginKey"])["errorCode"] == 0


def test_a_created_account_works_at_once_and_sees_only_its_own_users(server):
    created = json.loads(server.cli(["account", "create", "acme", "--json"], check=True).stdout)
    assert set(created) == {"spAccountLoginName", "spAccountLoginKey"}
    assert server.call("add_user", username="shared-name")["errorCode"] == 0
    other = dict(spAccountLoginName=created["spAccountLoginName"], spAccountLoginKey=created["spAccountLoginKey"])
    assert server.call("find_user", username="shared-name", **other)["errorCode"] == 9001
    assert server.call("add_user", username="shared-name", **other)["errorCode"] == 0
    audit = server.cli(["audit", "list", "--account", "acme", "--json"], check=True).stdout
    time.sleep(0.2)
    rows = [json.loads(line) for line in server.cli(["audit", "list", "--account", "acme", "--json"], check=True).stdout.splitlines()]
    assert rows and all(r["account"] == "acme" for r in rows), (audit, rows)
    assert not any(created["spAccountLoginKey"] in json.dumps(r) for r in rows)

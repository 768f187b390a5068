"""Operator commands (`tessera account disable|enable|rotate-key`, a separate process) hold for the very next request on
every node: two `tessera serve` processes on one database (one SQLite file, or one PostgreSQL database), both with the
account warm in their caches."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def two_nodes(start_server, backend):
    a = start_server(backend)
    b = start_server(backend, share_with=a)
    return a, b


def _code(node, name: str, key: str) -> int:
    return node.call("find_users", spAccountLoginName=name, spAccountLoginKey=key)["errorCode"]


def _warm(nodes, name: str, key: str) -> None:
    for _ in range(5):
        for node in nodes:
            assert _code(node, name, key) == 0


def test_disable_and_rotate_hold_for_the_next_request_on_every_node(two_nodes):
    a, b = two_nodes
    created = json.loads(a.cli(["account", "create", "tenant1", "--json"], check=True).stdout)
    name, key = created["spAccountLoginName"], created["spAccountLoginKey"]
    _warm((a, b), name, key)

    a.cli(["account", "disable", name], check=True)
    assert _code(b, name, key) == 9000
    assert _code(a, name, key) == 9000

    a.cli(["account", "enable", name], check=True)
    assert _code(a, name, key) == 0
    assert _code(b, name, key) == 0
    _warm((a, b), name, key)

    rotated = json.loads(b.cli(["account", "rotate-key", name, "--json"], check=True).stdout)
    new_key = rotated["spAccountLoginKey"]
    assert _code(a, name, key) == 9000
    assert _code(b, name, key) == 9000
    assert _code(a, name, new_key) == 0
    assert _code(b, name, new_key) == 0


def test_migrate_reports_no_collision_on_a_clean_database(server):
    out = server.cli(["migrate"], check=True).stdout
    assert "collision" not in out
    assert "database is up to date" in out

"""Connection limits (docs/operations.md, "Connections"; docs/api.md, "HTTP status"), with real sockets against the
real binary: request headers trickled in (slowloris) are cut off at the header timeout with 408, an idle keep-alive
connection is closed at the idle timeout, a stalled body gets 408, and `Expect: 100-continue` with a Content-Length
over the 64 KiB limit gets 413 without `100 Continue`.

Short limits are configured to keep the tests fast; the defaults (10 s / 30 s / 60 s) are checked against the
documentation and the built-in values by `test_documented_defaults`."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from pathlib import Path

import pytest

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"
SOAP_PATH = "/AuthServerWCFService/SurePassAuthServerWCFService.svc"
HEADER_S, BODY_S, IDLE_S = 2, 2, 4
LIMITS = {
    "TESSERA_SERVER__HEADER_TIMEOUT_SECONDS": str(HEADER_S),
    "TESSERA_SERVER__BODY_TIMEOUT_SECONDS": str(BODY_S),
    "TESSERA_SERVER__IDLE_TIMEOUT_SECONDS": str(IDLE_S),
}


@pytest.fixture
def limited(start_server):
    return start_server("sqlite", env=LIMITS)


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def _read_until_closed(sock: socket.socket, limit: float = 15.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when (seconds from now) it closed."""
    started = time.monotonic()
    data = b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def _is_open(sock: socket.socket) -> bool:
    """True when the server has neither closed the connection nor sent anything."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except ConnectionResetError:
        return False


def _envelope(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _request_head(server, content_length: int, extra: str = "") -> bytes:
    return (f"POST {API_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n{extra}\r\n").encode()


def test_trickled_headers_are_cut_off_at_the_header_timeout(limited):
    """Slowloris: 30 connections each sending a header line every 0.5 s never finish their headers; each is answered
    408 and closed at the header timeout, while a normal client is served all along."""
    socks = []
    for _ in range(30):
        s = _connect(limited)
        s.sendall(f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\n".encode())
        socks.append(s)
    started = time.monotonic()
    closed_at: dict[int, float] = {}
    replies: dict[int, bytes] = {i: b"" for i in range(len(socks))}
    n = 0
    while len(closed_at) < len(socks) and time.monotonic() - started < HEADER_S + 6:
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            try:
                s.sendall(f"X-Slow-{n}: {n}\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                pass
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                replies[i] += chunk
                if chunk == b"":
                    closed_at[i] = time.monotonic() - started
        n += 1
        assert limited.get("/healthz", timeout=5).status_code == 200  # others are served meanwhile
        time.sleep(0.5)
    assert len(closed_at) == len(socks), f"still open after {HEADER_S + 6} s: {len(socks) - len(closed_at)}"
    assert max(closed_at.values()) < HEADER_S + 2.5, closed_at
    assert min(closed_at.values()) > HEADER_S - 0.5, closed_at
    for i, raw in replies.items():
        status, env = _envelope(raw)
        assert status == 408 and env["errorCode"] == 9145, raw
    for s in socks:
        s.close()


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(limited):
    with _connect(limited) as s:
        data, waited = _read_until_closed(s)
    assert data == b"" and HEADER_S - 0.5 < waited < HEADER_S + 2.5, (data, waited)


def test_idle_keep_alive_connection_is_closed_at_the_idle_timeout(limited):
    with _connect(limited) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        reply = b""
        while b'{"status":"ok"}' not in reply:
            reply += s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        done = time.monotonic()
        # Past the header timeout the idle connection is still there (idleness has its own, longer limit) ...
        time.sleep(HEADER_S + 0.7)
        assert _is_open(s), "closed at the header timeout, not the idle timeout"
        # ... and it is still usable.
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        reply = b""
        while b'{"status":"ok"}' not in reply:
            reply += s.recv(4096)
        done = time.monotonic()
        data, _ = _read_until_closed(s)
        idle = time.monotonic() - done
    assert data == b"" and IDLE_S - 0.5 < idle < IDLE_S + 2.5, (data, idle)


@pytest.mark.parametrize("path", [API_PATH, SOAP_PATH])
def test_a_stalled_body_is_answered_408(limited, path):
    with _connect(limited) as s:
        body = b'{"type": "find_user", "username": "x"}'
        head = _request_head(limited, len(body) + 100).replace(API_PATH.encode(), path.encode())
        started = time.monotonic()
        s.sendall(head + body)  # 100 bytes short, then nothing
        raw, _ = _read_until_closed(s)
        waited = time.monotonic() - started
    assert BODY_S - 0.5 < waited < BODY_S + 2.5, waited
    assert raw.startswith(b"HTTP/1.1 408"), raw[:300]
    if path == API_PATH:
        status, env = _envelope(raw)
        assert env["errorCode"] == 9145, env
        assert env["errorMessage"] == f"request body not received within {BODY_S} s", env
    else:
        assert b"request body not received within" in raw and b"Fault" in raw, raw


def test_a_trickled_body_is_answered_408_at_the_body_limit(limited):
    """A body arriving a byte at a time is cut off at the body timeout, counted from the headers."""
    with _connect(limited) as s:
        body = json.dumps({"type": "find_user", **limited.account, "username": "x"}).encode()
        s.sendall(_request_head(limited, len(body)))
        started = time.monotonic()
        raw = b""
        for b in body:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([s], [], [], 0.25)
            if readable:
                break
        rest, _ = _read_until_closed(s)
        raw += rest
        waited = time.monotonic() - started
    assert raw.startswith(b"HTTP/1.1 408"), raw[:300]
    assert BODY_S - 0.5 < waited < BODY_S + 2.5, waited


@pytest.mark.parametrize("path", [API_PATH, SOAP_PATH])
def test_expect_100_continue_over_the_limit_gets_413_without_100(limited, path):
    with _connect(limited) as s:
        head = _request_head(limited, 100 * 1024 * 1024, "Expect: 100-continue\r\n")
        s.sendall(head.replace(API_PATH.encode(), path.encode()))
        raw, waited = _read_until_closed(s)
    assert b"100 Continue" not in raw, raw[:300]
    assert raw.startswith(b"HTTP/1.1 413"), raw[:300]
    assert waited < 2, waited
    if path == API_PATH:
        status, env = _envelope(raw)
        assert env["errorCode"] == 9104, env


def test_expect_100_continue_within_the_limit_is_served(limited):
    body = json.dumps({"type": "find_user", **limited.account, "username": "nobody"}).encode()
    with _connect(limited) as s:
        s.sendall(_request_head(limited, len(body), "Expect: 100-continue\r\n"))
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        s.sendall(body)
        raw = b""
        while not raw.rstrip().endswith(b"}"):
            raw += s.recv(65536)
    final = raw[raw.index(b"HTTP/1.1 200"):] if b"HTTP/1.1 200" in raw else raw
    status, env = _envelope(final)
    assert status == 200 and isinstance(env["errorCode"], int) and env["errorCode"] != 0, env


def test_documented_defaults(start_server):
    """docs/operations.md documents 10 / 30 / 60 s, and a server with no [server] section really uses them: past
    the short test limits, an unconfigured server still waits for a stalled body and keeps an idle connection."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for key, value in (("header_timeout_seconds", 10), ("body_timeout_seconds", 30), ("idle_timeout_seconds", 60)):
        assert re.search(rf"^{key} = {value}\b", doc, re.M), f"docs/operations.md lacks `{key} = {value}`"
    s = start_server("sqlite")
    with _connect(s) as idle, _connect(s) as stalled:
        stalled.sendall(_request_head(s, 50) + b'{"type":')
        time.sleep(HEADER_S + 1.5)
        assert _is_open(idle), "an unconfigured server closed a new connection within 3.5 s"
        assert _is_open(stalled), "an unconfigured server gave up on a body within 3.5 s"

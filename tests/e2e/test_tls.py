"""HTTPS (docs/operations.md, "TLS"): with `[tls] cert_file` / `key_file` the listener speaks TLS only, offers HTTP/2
and HTTP/1.1 by ALPN, picks up a new pair on SIGHUP without dropping open connections, keeps the old pair when the
new one is bad, and refuses to start with an unreadable or mismatched pair.

The certificates come from a throw-away CA made here with `cryptography`; clients verify against it (requests,
Python's ssl, curl)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests

from tls_util import Ca, tls_env, use_https, write_pair

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"


def _context(ca_path, alpn=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_path))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _handshake(port: int, ca_path, alpn=None) -> tuple[str | None, bytes]:
    """A fresh TLS connection: (negotiated ALPN protocol, server certificate DER)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with _context(ca_path, alpn).wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True)


def _wait_log(server, text: str, count: int = 1, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while server.stderr_text().count(text) < count:
        assert time.monotonic() < deadline, f"log never said {text!r} ({count}x):\n{server.stderr_text()[-3000:]}"
        time.sleep(0.05)


@pytest.fixture
def ca(tmp_path):
    return Ca(tmp_path)


@pytest.fixture
def tls_server(start_server, tmp_path, ca):
    cert_pem, key_pem, der = ca.issue("tessera-one")
    cert_path, key_path = write_pair(tmp_path, cert_pem, key_pem)
    s = start_server("sqlite", env=tls_env(cert_path, key_path), wait=False)
    use_https(s, ca.path)
    s.tls_files = (cert_path, key_path)
    s.first_der = der
    return s


def test_https_serves_the_api_with_http2_and_http11_by_alpn(tls_server, ca):
    s = tls_server
    # requests (HTTP/1.1 over TLS), verifying the chain against the test CA.
    r = s.call("add_user", username="tls-alice", firstName="Alice")
    assert r["errorCode"] == 0, r
    assert s.call("find_user", username="tls-alice")["firstName"] == "Alice"

    # ALPN: h2 preferred, http/1.1 for clients that offer only that; the certificate is the configured one.
    assert _handshake(s.port, ca.path, ["h2", "http/1.1"]) == ("h2", s.first_der)
    assert _handshake(s.port, ca.path, ["http/1.1"])[0] == "http/1.1"

    # A real HTTP/2 request with curl (nghttp2), over TLS, verified against the CA.
    body = json.dumps({"type": "find_user", **s.account, "username": "tls-alice"})
    out = subprocess.run(
        ["curl", "-sS", "-v", "--http2", "--cacert", str(ca.path), "-H", "Content-Type: application/json",
         "--data-binary", body, s.api_url],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "ALPN: server accepted h2" in out.stderr or "ALPN, server accepted to use h2" in out.stderr, out.stderr
    assert "< HTTP/2 200" in out.stderr, out.stderr
    reply = json.loads(out.stdout)
    assert reply["errorCode"] == 0 and reply["firstName"] == "Alice", reply

    # curl over HTTP/1.1 too.
    out = subprocess.run(["curl", "-sS", "-v", "--http1.1", "--cacert", str(ca.path), s.url + "/healthz"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "< HTTP/1.1 200" in out.stderr, out.stderr

    # HTTPS only: a plain-HTTP request gets no HTTP answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{s.port}/healthz", timeout=10)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while chunk := raw.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert not data.startswith(b"HTTP/"), data[:200]
    # The server is unharmed by it.
    assert s.get("/healthz").status_code == 200


def test_sighup_reloads_the_pair_keeping_open_connections(tls_server, ca, tmp_path):
    s = tls_server
    cert_path, key_path = s.tls_files

    # A keep-alive connection opened under the first certificate.
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=_context(ca.path), timeout=10)
    body = json.dumps({"type": "add_user", **s.account, "username": "hup-bob"})
    conn.request("POST", API_PATH, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["errorCode"] == 0
    assert conn.sock.getpeercert(binary_form=True) == s.first_der

    # New pair on disk, SIGHUP: new connections get it.
    cert2, key2, der2 = ca.issue("tessera-two")
    write_pair(tmp_path, cert2, key2)
    s.proc.send_signal(signal.SIGHUP)
    _wait_log(s, "TLS certificate and key reloaded")
    assert _handshake(s.port, ca.path)[1] == der2
    assert s.call("find_user", username="hup-bob")["errorCode"] == 0  # requests' own new connection

    # The connection opened before the reload is still open and still works (same socket, old certificate).
    sock_before = conn.sock
    conn.request("POST", API_PATH, body=json.dumps({"type": "find_user", **s.account, "username": "hup-bob"}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["errorCode"] == 0
    assert conn.sock is sock_before and conn.sock.getpeercert(binary_form=True) == s.first_der

    # A bad pair (the new certificate with the other key): logged, the pair in use stays, the server runs on.
    other_cert, _, _ = ca.issue("tessera-three")
    write_pair(tmp_path, other_cert, key2)
    s.proc.send_signal(signal.SIGHUP)
    _wait_log(s, "TLS reload failed")
    assert "do not match" in s.stderr_text()
    assert s.proc.poll() is None
    assert _handshake(s.port, ca.path)[1] == der2
    # An unreadable pair: the same.
    key_path.unlink()
    s.proc.send_signal(signal.SIGHUP)
    _wait_log(s, "TLS reload failed", count=2)
    assert "cannot read [tls] key_file" in s.stderr_text()
    assert _handshake(s.port, ca.path)[1] == der2
    assert s.call("find_user", username="hup-bob")["errorCode"] == 0
    conn.close()


def test_tls_handshake_is_held_to_the_header_timeout(start_server, tmp_path, ca):
    cert_pem, key_pem, _ = ca.issue("tessera-slow")
    cert_path, key_path = write_pair(tmp_path, cert_pem, key_pem)
    s = start_server("sqlite", env={**tls_env(cert_path, key_path), "TESSERA_SERVER__HEADER_TIMEOUT_SECONDS": "2"},
                     wait=False)
    use_https(s, ca.path)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
        started = time.monotonic()
        raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
        try:
            data = raw.recv(100)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - started
    assert data == b"" and 1.5 < waited < 5, (data, waited)


@pytest.mark.parametrize("problem", ["mismatched", "missing", "not_pem", "only_cert"])
def test_a_bad_pair_stops_the_start_with_a_clear_message(start_server, tmp_path, ca, problem):
    cert_pem, key_pem, _ = ca.issue("tessera-one")
    _, other_key, _ = ca.issue("tessera-other")
    cert_path, key_path = write_pair(tmp_path, cert_pem, other_key if problem == "mismatched" else key_pem)
    env = tls_env(cert_path, key_path)
    expected = {
        "mismatched": "do not match",
        "missing": "cannot read [tls] cert_file",
        "not_pem": "holds no usable PEM private key",
        "only_cert": "needs both cert_file and key_file",
    }[problem]
    if problem == "missing":
        cert_path.unlink()
    elif problem == "not_pem":
        key_path.write_text("this is not a key\n")
    elif problem == "only_cert":
        env["TESSERA_TLS__KEY_FILE"] = None
    s = start_server("sqlite", env=env, wait=False)
    code = s.wait_exit(timeout=30)
    assert code != 0
    err = s.stderr_text()
    assert expected in err, err
    assert "BEGIN" not in err  # no key material in the message

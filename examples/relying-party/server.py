#!/usr/bin/env python3
"""A minimal relying party in front of Tessera: serves index.html and four JSON endpoints that call Tessera's JSON
API with the account key, which never reaches the browser. Python standard library only.

    TESSERA_URL=http://127.0.0.1:8080 TESSERA_ACCOUNT=acme TESSERA_KEY=... RP_ID=localhost PORT=8000 ./server.py

The page's origin (here http://localhost:8000) must be a trusted facet of the account:
    tessera account facets add acme http://localhost:8000

Endpoints (POST, JSON in and out; the reply is Tessera's):
    /api/register/begin   {username, residentKey?, userVerification?, attestation?}  -> webauthn_pre_enroll
                          (the user is created in Tessera first if it does not exist)
    /api/register/finish  {username, sessionId, credential}                          -> webauthn_enroll
    /api/login/begin      {username?, userVerification?}                             -> webauthn_pre_sign
    /api/login/finish     {sessionId, credential}                                    -> webauthn_sign
A real site would keep sessionId in its own server-side session and, after webauthn_sign succeeds, sign in the
`username` Tessera returns.
"""

from __future__ import annotations

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TESSERA_URL = os.environ.get("TESSERA_URL", "http://127.0.0.1:8080").rstrip("/")
API = TESSERA_URL + "/AuthServer/REST/U2F/U2FServer.aspx"
ACCOUNT = {"spAccountLoginName": os.environ.get("TESSERA_ACCOUNT", ""),
           "spAccountLoginKey": os.environ.get("TESSERA_KEY", "")}
RP_ID = os.environ.get("RP_ID", "localhost")
RP_NAME = os.environ.get("RP_NAME", "Example RP")
PAGE = (Path(__file__).resolve().parent / "index.html").read_bytes()


def tessera(type_: str, **fields) -> dict:
    """One call of Tessera's JSON API."""
    body = json.dumps({"type": type_, **ACCOUNT, **fields}).encode()
    req = urllib.request.Request(API, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def pick(body: dict, *names: str) -> dict:
    return {n: body[n] for n in names if body.get(n) not in (None, "")}


def register_begin(body: dict) -> dict:
    username = body.get("username", "")
    if tessera("find_user", username=username).get("errorCode") == 9001:  # unknown user: create it
        tessera("add_user", username=username)
    return tessera("webauthn_pre_enroll", username=username, rpId=RP_ID, rpName=RP_NAME,
                   **pick(body, "residentKey", "userVerification", "attestation", "authenticatorAttachment"))


def register_finish(body: dict) -> dict:
    return tessera("webauthn_enroll", **pick(body, "username", "sessionId", "credential", "securityKeyName"))


def login_begin(body: dict) -> dict:
    return tessera("webauthn_pre_sign", rpId=RP_ID, **pick(body, "username", "userVerification"))


def login_finish(body: dict) -> dict:
    return tessera("webauthn_sign", **pick(body, "sessionId", "credential"))


ROUTES = {"/api/register/begin": register_begin, "/api/register/finish": register_finish,
          "/api/login/begin": login_begin, "/api/login/finish": login_finish}


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, ctype: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE)
        else:
            self._send(404, "text/plain", b"not found")

    def do_POST(self) -> None:  # noqa: N802
        route = ROUTES.get(self.path)
        if route is None:
            self._send(404, "text/plain", b"not found")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            reply = route(body if isinstance(body, dict) else {})
        except Exception as e:  # the example reports any failure to the page
            reply = {"errorCode": -1, "errorMessage": f"relying party: {type(e).__name__}: {e}"}
        self._send(200, "application/json", json.dumps(reply).encode())

    def log_message(self, fmt: str, *args) -> None:
        pass


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"relying party on http://localhost:{port} (rpId {RP_ID}) -> {API}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Soft U2F authenticator and reference verifier for test_u2f.py, run in the .venv-u2f venv.

Yubico's python-u2flib-host (SoftU2FDevice) and python-u2flib-server need cryptography<37, which cannot live in the
suite's own venv, so test_u2f.py runs this script as a subprocess: one JSON request on stdin, one JSON reply on
stdout (exit 0), or {"error": "..."} (exit 1).

Requests:
    {"op": "register", "device": PATH, "facet": ORIGIN, "request": RegisterRequest}
        -> {"registrationData", "clientData", "version"}  (u2flib_host.u2f_v2.register with a SoftU2FDevice whose
           state lives in the JSON file PATH). With "any_facet": true the library's facet check (which would fetch
           a trusted-facets list over the network for a facet other than the appId's origin) is skipped, so a
           browser on another origin can be played.
    {"op": "sign", "device": PATH, "facet": ORIGIN, "request": SignRequest}
        -> {"keyHandle", "signatureData", "clientData"}  (u2flib_host.u2f_v2.authenticate)
    {"op": "verify_registration", "appId", "challenge", "facets": [...], "response": {registrationData, clientData}}
        -> {"keyHandle", "publicKey"}  (u2flib_server: RegisterRequest.complete, an independent verifier)
    {"op": "verify_sign", "appId", "challenge", "facets": [...], "registration": {keyHandle, publicKey},
     "response": {keyHandle, signatureData, clientData}}
        -> {"counter", "userPresence"}  (u2flib_server: SignRequest.complete)
"""

from __future__ import annotations

import json
import sys
import warnings

# cryptography 36 warns that signer()/verifier() are deprecated: that is the very API these libraries use.
warnings.simplefilter("ignore")

from u2flib_host import u2f_v2  # noqa: E402
from u2flib_host.soft import SoftU2FDevice  # noqa: E402
from u2flib_server.model import U2fRegisterRequest, U2fSignRequest  # noqa: E402

VERSION = "U2F_V2"


def register(req: dict) -> dict:
    if req.get("any_facet"):
        u2f_v2.verify_facet = lambda app_id, facet: None
    device = SoftU2FDevice(req["device"])
    resp = u2f_v2.register(device, req["request"], req["facet"])
    return {**resp, "version": VERSION}


def sign(req: dict) -> dict:
    device = SoftU2FDevice(req["device"])
    return u2f_v2.authenticate(device, req["request"], req["facet"])


def verify_registration(req: dict) -> dict:
    request = U2fRegisterRequest(
        appId=req["appId"],
        registerRequests=[{"version": VERSION, "challenge": req["challenge"]}],
        registeredKeys=[],
    )
    response = {"version": VERSION, **req["response"]}
    registration, _cert = request.complete(response, req["facets"])
    return {"keyHandle": registration["keyHandle"], "publicKey": registration["publicKey"]}


def verify_sign(req: dict) -> dict:
    registration = {"version": VERSION, "appId": req["appId"], **req["registration"]}
    request = U2fSignRequest(appId=req["appId"], registeredKeys=[registration], challenge=req["challenge"])
    _device, counter, presence = request.complete(req["response"], req["facets"])
    return {"counter": counter, "userPresence": presence}


OPS = {"register": register, "sign": sign, "verify_registration": verify_registration, "verify_sign": verify_sign}


def main() -> int:
    try:
        req = json.load(sys.stdin)
        out = OPS[req["op"]](req)
    except Exception as e:  # report anything as a JSON error for the test to show
        json.dump({"error": f"{type(e).__name__}: {e}"}, sys.stdout)
        return 1
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

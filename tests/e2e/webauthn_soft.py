"""A software WebAuthn authenticator and client for the end-to-end tests (no browser): it answers Tessera's
PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON with RegistrationResponseJSON / AuthenticationResponseJSON
as a browser and an authenticator would, built independently with `cryptography` and a small CBOR encoder, and can
be told to misbehave (wrong origin, wrong rpIdHash, no UV, a counter that goes back, ...).

Attestation formats: "none", "packed" (self attestation), "packed-x5c" (a self-made attestation certificate),
"fido-u2f".
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# -- CBOR (RFC 8949) encoder: just what attestation objects need --------------------------------------------------


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError("too large")


def cbor(v) -> bytes:
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, bytes):
        return _head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(type(v))


# -- keys and certificates --------------------------------------------------------------------------------------


def cose_es256(pub: ec.EllipticCurvePublicKey) -> bytes:
    nums = pub.public_numbers()
    return cbor({1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")})


def point(pub: ec.EllipticCurvePublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def attestation_cert(key: ec.EllipticCurvePrivateKey, aaguid: bytes | None) -> bytes:
    """A self-signed packed-style attestation certificate (no trust anchor is configured in Tessera)."""
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera test authenticator"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Soft authenticator"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if aaguid is not None:
        # id-fido-gen-ce-aaguid: an OCTET STRING of the 16 bytes
        b = b.add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4"), b"\x04\x10" + aaguid),
                            critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# -- the authenticator + client ---------------------------------------------------------------------------------

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40
AAGUID = bytes.fromhex("7e55e7a0b2f64c4f9a3ad2b1c0ffee01")


class SoftAuthenticator:
    """One credential (P-256), its counter and, once registered, the user handle it was created for."""

    def __init__(self, origin: str):
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = 0
        self.user_handle: bytes | None = None

    def client_data(self, typ: str, challenge: str, origin: str | None = None, **extra) -> bytes:
        return json.dumps({"type": typ, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False,
                           **extra}).encode()

    def register(self, options: dict, fmt: str = "none", *, origin: str | None = None, uv: bool = True,
                 rp_id: str | None = None, typ: str = "webauthn.create", challenge: str | None = None) -> dict:
        """RegistrationResponseJSON for PublicKeyCredentialCreationOptionsJSON `options`."""
        rp_id_hash = sha256((rp_id or options["rp"]["id"]).encode())
        cdj = self.client_data(typ, challenge or options["challenge"], origin)
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if uv else 0)
        aaguid = bytes(16) if fmt == "fido-u2f" else AAGUID
        cose = cose_es256(self.key.public_key())
        auth_data = (rp_id_hash + bytes([flags]) + struct.pack(">I", self.counter) + aaguid
                     + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose)
        cdh = sha256(cdj)
        if fmt == "none":
            stmt = {}
        elif fmt == "packed":
            stmt = {"alg": -7, "sig": self.key.sign(auth_data + cdh, ec.ECDSA(hashes.SHA256()))}
        elif fmt == "packed-x5c":
            att_key = ec.generate_private_key(ec.SECP256R1())
            stmt = {"alg": -7, "sig": att_key.sign(auth_data + cdh, ec.ECDSA(hashes.SHA256())),
                    "x5c": [attestation_cert(att_key, AAGUID)]}
            fmt = "packed"
        elif fmt == "fido-u2f":
            att_key = ec.generate_private_key(ec.SECP256R1())
            msg = b"\x00" + rp_id_hash + cdh + self.credential_id + point(self.key.public_key())
            stmt = {"sig": att_key.sign(msg, ec.ECDSA(hashes.SHA256())), "x5c": [attestation_cert(att_key, None)]}
        else:
            raise ValueError(fmt)
        att_obj = cbor({"fmt": fmt, "attStmt": stmt, "authData": auth_data})
        self.user_handle = unb64u(options["user"]["id"])
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64u(cdj), "attestationObject": b64u(att_obj), "transports": ["usb"]},
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
        }

    def assertion(self, options: dict, *, origin: str | None = None, uv: bool = True, up: bool = True,
                  rp_id: str | None = None, counter: int | None = None, user_handle: bytes | None | bool = True,
                  challenge: str | None = None, typ: str = "webauthn.get") -> dict:
        """AuthenticationResponseJSON for PublicKeyCredentialRequestOptionsJSON `options` (counter + 1 unless given;
        user_handle True = the registered one, None = omitted)."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        rp_id_hash = sha256((rp_id or options["rpId"]).encode())
        flags = (FLAG_UP if up else 0) | (FLAG_UV if uv else 0)
        auth_data = rp_id_hash + bytes([flags]) + struct.pack(">I", counter)
        cdj = self.client_data(typ, challenge or options["challenge"], origin)
        sig = self.key.sign(auth_data + sha256(cdj), ec.ECDSA(hashes.SHA256()))
        response = {"clientDataJSON": b64u(cdj), "authenticatorData": b64u(auth_data), "signature": b64u(sig)}
        handle = self.user_handle if user_handle is True else user_handle
        if handle:
            response["userHandle"] = b64u(handle)
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id), "type": "public-key",
                "response": response, "clientExtensionResults": {}}


def u2f_key_assertion(device_file: str, key_handle: bytes, app_id: str, options: dict, origin: str) -> dict:
    """AuthenticationResponseJSON made with a key of Yubico's SoftU2FDevice (its JSON state file) through the appid
    extension: rpIdHash = SHA-256(appId), the device's own counter advanced and saved, as a browser would send it
    for a U2F key."""
    with open(device_file) as f:
        data = json.load(f)
    entry = data["keys"][key_handle.hex().upper()]
    key = serialization.load_pem_private_key(entry["priv_key"].encode(), password=None)
    data["counter"] += 1
    with open(device_file, "w") as f:
        json.dump(data, f)
    auth_data = sha256(app_id.encode()) + bytes([FLAG_UP]) + struct.pack(">I", data["counter"])
    cdj = json.dumps({"type": "webauthn.get", "challenge": options["challenge"], "origin": origin,
                      "crossOrigin": False}).encode()
    sig = key.sign(auth_data + sha256(cdj), ec.ECDSA(hashes.SHA256()))
    return {"id": b64u(key_handle), "rawId": b64u(key_handle), "type": "public-key",
            "response": {"clientDataJSON": b64u(cdj), "authenticatorData": b64u(auth_data), "signature": b64u(sig)},
            "clientExtensionResults": {"appid": True}}

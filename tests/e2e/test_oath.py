"""OATH devices and OTP validation against independent implementations (docs/api.md).

Codes come from `oathtool` (OATH Toolkit) and `pyotp`, never from Tessera's own code: a server that computed codes
the way only it does would fail here. `get_oath_device_qrcode` must hand out an `otpauth://` URI that pyotp reads
and whose codes then validate, and a QR code that is a real PNG.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import subprocess

import pyotp

RFC4226_SEED = b"12345678901234567890"
RFC6238_SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def oathtool(*args: str) -> str:
    proc = subprocess.run(["oathtool", *args], capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


def ok(reply: dict) -> dict:
    assert reply["errorCode"] == 0, reply
    return reply


def add_device(server, **fields) -> dict:
    return ok(server.call("add_oath_device", **fields))


def validate(server, username: str, otp, psn: str = "") -> dict:
    return server.call("validate_oath_otp", username=username, otp=otp, psn=psn)


def test_hotp_codes_from_oathtool(server):
    ok(server.call("add_user", username="hank"))
    for digits in (6, 8):
        dev = add_device(server, username="hank", secretKeyHex=RFC4226_SEED.hex(), OtpLength=digits)
        for counter in range(5):
            code = oathtool("--hotp", "-d", str(digits), "-c", str(counter), RFC4226_SEED.hex())
            assert len(code) == digits
            ok(validate(server, "hank", code, dev["psn"]))
        # replay of the last code
        reply = validate(server, "hank", code, dev["psn"])
        assert reply["errorCode"] == 9002, reply
    # the RFC 4226 reference value, as oathtool computes it
    assert oathtool("--hotp", "-c", "0", RFC4226_SEED.hex()) == "755224"


def test_totp_codes_from_oathtool(server):
    ok(server.call("add_user", username="tom"))
    for mode, seed in RFC6238_SEEDS.items():
        for digits in (6, 8):
            dev = add_device(server, username="tom", otpType=2, algorithm=mode.lower(), OtpLength=digits, secretKeyHex=seed.hex())
            code = oathtool(f"--totp={mode}", "-d", str(digits), seed.hex())
            ok(validate(server, "tom", code, dev["psn"]))
            reply = validate(server, "tom", code, dev["psn"])
            assert reply["errorCode"] == 9002, reply
    # a 60-second step, with the seed given as base64
    seed = RFC6238_SEEDS["SHA256"]
    dev = add_device(server, username="tom", otpType=2, algorithm="SHA256", timeStep=60,
                     secretKeyHexBase64=base64.b64encode(seed).decode())
    ok(validate(server, "tom", oathtool("--totp=SHA256", "-s", "60s", seed.hex()), dev["psn"]))


def test_hotp_and_totp_codes_from_pyotp(server):
    ok(server.call("add_user", username="pia"))
    for alg, digest in DIGESTS.items():
        for digits in (6, 8):
            seed = RFC6238_SEEDS[alg]
            b32 = base64.b32encode(seed).decode()
            hotp_dev = add_device(server, username="pia", secretKeyHex=seed.hex(), algorithm=alg, OtpLength=digits)
            hotp = pyotp.HOTP(b32, digits=digits, digest=digest)
            for counter in (0, 1, 3):  # skipping one is within the look-ahead
                ok(validate(server, "pia", hotp.at(counter), hotp_dev["psn"]))
            assert validate(server, "pia", hotp.at(2), hotp_dev["psn"])["errorCode"] == 9002
            totp_dev = add_device(server, username="pia", otpType=2, secretKeyHex=seed.hex(), algorithm=alg,
                                  OtpLength=digits)
            ok(validate(server, "pia", pyotp.TOTP(b32, digits=digits, digest=digest).now(), totp_dev["psn"]))


def test_numeric_otp_keeps_its_leading_zero(server):
    ok(server.call("add_user", username="zed"))
    dev = add_device(server, username="zed", secretKeyHex=RFC4226_SEED.hex())
    hotp = pyotp.HOTP(base64.b32encode(RFC4226_SEED).decode())
    counter = next(c for c in range(200) if hotp.at(c).startswith("0"))
    for c in range(counter):
        ok(validate(server, "zed", int(hotp.at(c)), dev["psn"]))  # JSON numbers
    ok(validate(server, "zed", int(hotp.at(counter)), dev["psn"]))


def test_wrong_code_message_and_lockout(server):
    ok(server.call("add_user", username="lou"))
    dev = add_device(server, username="lou", secretKeyHex=RFC4226_SEED.hex(), psn="LOU-1")
    hotp = pyotp.HOTP(base64.b32encode(RFC4226_SEED).decode())
    wrong = "000000"
    assert wrong not in {hotp.at(c) for c in range(40)}
    reply = validate(server, "lou", wrong, dev["psn"])
    assert reply["errorCode"] == 9003, reply
    assert reply["errorMessage"] == "OTP [EVENT] [LOU-1] FAILED - outside window [size=10] or invalid."
    for _ in range(9):
        assert validate(server, "lou", wrong, dev["psn"])["errorCode"] == 9003
    assert validate(server, "lou", hotp.at(0), dev["psn"])["errorCode"] == 9015
    ok(server.call("enable_device", psn=dev["psn"]))
    ok(validate(server, "lou", hotp.at(0), dev["psn"]))


def test_sync_with_oathtool_codes(server):
    ok(server.call("add_user", username="syd"))
    dev = add_device(server, username="syd", secretKeyHex=RFC4226_SEED.hex())
    code = lambda c: oathtool("--hotp", "-c", str(c), RFC4226_SEED.hex())  # noqa: E731
    assert validate(server, "syd", code(300), dev["psn"])["errorCode"] == 9003
    reply = server.call("sync_oath_device", username="syd", psn=dev["psn"], otp1=code(300), otp2=code(302))
    assert reply["errorCode"] == 9035, reply
    ok(server.call("sync_oath_device", username="syd", psn=dev["psn"], otp1=code(300), otp2=code(301)))
    ok(validate(server, "syd", code(302), dev["psn"]))
    ok(server.call("active_oath_device", username="syd", otp1=int(code(400)), otp2=int(code(401))))
    ok(validate(server, "syd", code(402)))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_qrcode_uri_works_in_pyotp(server):
    ok(server.call("add_user", username="quinn"))
    for fields in ({"otpType": 2, "algorithm": "SHA256", "OtpLength": 8}, {"otpType": 1}, {"otpType": 2, "timeStep": 60}):
        dev = add_device(server, username="quinn", **fields)
        assert re.fullmatch(r"TESS-\d{8}", dev["psn"]), dev
        qr = ok(server.call("get_oath_device_qrcode", deviceId=dev["deviceId"]))
        assert qr["QRCodeURL"].startswith("data:image/png;base64,")
        png = base64.b64decode(qr["QRCodeURL"].split(",", 1)[1], validate=True)
        width, height = png_size(png)
        assert width == height and width >= (21 + 8) * 4, (width, height)
        uri = qr["otpauthUri"]
        assert uri.startswith("otpauth://")
        otp = pyotp.parse_uri(uri)
        assert otp.issuer == "Tessera"
        assert otp.name == "quinn"
        assert otp.digits == fields.get("OtpLength", 6)
        if fields["otpType"] == 2:
            assert isinstance(otp, pyotp.TOTP)
            assert otp.interval == fields.get("timeStep", 30)
            ok(validate(server, "quinn", otp.now(), dev["psn"]))
        else:
            assert isinstance(otp, pyotp.HOTP)
            ok(validate(server, "quinn", otp.at(0), dev["psn"]))
            ok(validate(server, "quinn", otp.at(1), dev["psn"]))
    # by psn, with the label chosen by the caller
    qr = ok(server.call("get_oath_device_qrcode", psn=dev["psn"], accountName="quinn@example.com"))
    assert pyotp.parse_uri(qr["otpauthUri"]).name == "quinn@example.com"


def test_device_management_round_trip(server):
    ok(server.call("add_user", username="amy"))
    ok(server.call("add_user", username="ben"))
    dev = add_device(server, deviceType=14, secretKeyHex=RFC4226_SEED.hex(), psn="HW-42")
    info = ok(server.call("find_device", psn="HW-42"))
    assert (info["deviceType"], info["otpType"], info["deviceStatus"], info["assigned"]) == (14, 1, 0, 0)
    ok(server.call("assign_device", username="amy", psn="HW-42", force=0))
    assert server.call("assign_device", username="ben", psn="HW-42", force=0)["errorCode"] == 9019
    ok(server.call("assign_device", username="ben", psn="HW-42", force=1))
    devices = ok(server.call("find_user", username="ben"))["Devices"]
    assert [d["tokenID"] for d in devices] == [dev["deviceId"]]
    ok(server.call("disable_device", psn="HW-42"))
    assert validate(server, "ben", oathtool("--hotp", "-c", "0", RFC4226_SEED.hex()), "HW-42")["errorCode"] == 9028
    ok(server.call("enable_device", psn="HW-42"))
    ok(validate(server, "ben", oathtool("--hotp", "-c", "0", RFC4226_SEED.hex()), "HW-42"))
    ok(server.call("unassign_device", psn="HW-42"))
    assert ok(server.call("find_device", psn="HW-42"))["assigned"] == 0
    ok(server.call("delete_device", psn="HW-42"))
    assert server.call("find_device", psn="HW-42")["errorCode"] == 9021

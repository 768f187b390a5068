"""The WCF/SOAP front door, driven by zeep from the WSDL the server publishes, as a generated proxy would be.

Every operation is called in a realistic flow, and its effect is checked through the JSON API too (one
implementation behind both front doors): users and session tokens; OATH devices (activation, validation,
resynchronisation, device management, QR provisioning); a passcode sent by email to a local SMTP sink and validated;
and a full FIDO U2F ceremony (register and sign) with a software authenticator built here from `cryptography`.
"""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import hashlib
import json
import os
import re
import socket
import time

import pyotp
import pytest
import requests
import zeep
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACTION = "http://tempuri.org/ISurePassAuthServerWCFService/"
OPERATIONS = {
    "SendOTP", "ValidateOTP", "ActiveDevice", "SynchronizeDevice", "AddUser", "UpdateUser", "DeleteUser", "FindUser",
    "FindUsers", "ValidateUser", "AddU2FUser", "EnrollUser", "FindDevice", "AssginDevice", "UnassignDevice",
    "EnrollAppU2FInit", "EnrollAppU2F", "SignAppU2FInit", "SignAppU2F", "DeleteSecurityKey", "CreateSessionToken",
    "ExpireSessionToken", "IsSessionTokenValid", "ProvisionQRCode",
}
# RFC 4226 Appendix D seed ("12345678901234567890")
SEED_HEX = "3132333435363738393031323334353637383930"
SEED_B32 = base64.b32encode(bytes.fromhex(SEED_HEX)).decode()
APP_ID = "https://rp.example.com"


def soap_client(server) -> zeep.Client:
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy from the environment
    return zeep.Client(server.soap_url + "?wsdl", transport=zeep.Transport(session=session, timeout=30))


def creds(server) -> dict:
    return {
        "authServerPartnerLoginName": server.account["spAccountLoginName"],
        "authServerPartnerLoginPassword": server.account["spAccountLoginKey"],
    }


def ok(result, what=""):
    assert result.ErrorCode == 0, f"{what}: {result}"
    return result


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------------


def test_wsdl_names_every_operation(server):
    client = soap_client(server)
    service = client.wsdl.services["SurePassAuthServerWCFService"]
    port = service.ports["BasicHttpBinding_ISurePassAuthServerWCFService"]
    assert port.binding_options["address"] == server.soap_url
    operations = port.binding._operations
    assert set(operations) == OPERATIONS
    for name, op in operations.items():
        assert op.soapaction == ACTION + name
    # ?singleWsdl is the same document
    r = requests.get(server.soap_url + "?singleWsdl", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "text/xml; charset=utf-8"
    assert "ISurePassAuthServerWCFService" in r.text


def test_users_and_session_tokens(server):
    svc = soap_client(server).service
    c = creds(server)
    ok(svc.AddUser(**c, authServerPartnerUserLoginName="mandy", firstName="Mandy", lastName="Moore",
                   mobile="+1(800)200-8411", email="mandy@example.com", pw="S3cret!pw", userStatus=0), "AddUser")
    dup = svc.AddUser(**c, authServerPartnerUserLoginName="MANDY", pw="x", userStatus=0)
    assert dup.ErrorCode == 9105, dup

    found = ok(svc.FindUser(**c, authServerPartnerUserLoginName="Mandy"), "FindUser")
    assert (found.FirstName, found.LastName, found.Email, found.Mobile, found.UserStatus, found.Username) == (
        "Mandy", "Moore", "mandy@example.com", "+1(800)200-8411", 0, "mandy")
    assert json_user(server, "mandy")["firstName"] == "Mandy"

    bad = svc.ValidateUser(**c, authServerPartnerUserLoginName="mandy", authServerPartnerUserPassword="wrong", noAuth=False)
    assert bad.ErrorCode == 9001 and bad.ErrorMsg == "User login failure [mandy]", bad
    ok(svc.ValidateUser(**c, authServerPartnerUserLoginName="mandy", authServerPartnerUserPassword="S3cret!pw",
                        noAuth=False), "ValidateUser")
    status_only = ok(svc.ValidateUser(**c, authServerPartnerUserLoginName="mandy", noAuth=True), "ValidateUser noAuth")
    assert status_only.UserStatus == 0

    ok(svc.UpdateUser(**c, authServerPartnerUserLoginName="mandy", lastName="Smith", pw="N3w!pw", userStatus=0),
       "UpdateUser")
    assert json_user(server, "mandy")["lastName"] == "Smith"
    assert json_user(server, "mandy")["email"] == "mandy@example.com", "omitted fields are unchanged"
    assert server.call("validate_user", username="mandy", pw="N3w!pw")["errorCode"] == 0

    assert server.call("add_user", username="marty", email="marty@example.org")["errorCode"] == 0
    by_name = ok(svc.FindUsers(**c, queryFilter="ma%", queryType="Username"), "FindUsers")
    assert sorted(u.Username for u in by_name.Users.UserSummary) == ["mandy", "marty"]
    by_email = ok(svc.FindUsers(**c, queryFilter="%@example.org", queryType="Email"), "FindUsers email")
    assert [u.Username for u in by_email.Users.UserSummary] == ["marty"]

    token = ok(svc.CreateSessionToken(**c, authServerPartnerUserLoginName="mandy",
                                      authServerPartnerUserLoginPassword="N3w!pw", durationMinutes=30, tokenType=1),
               "CreateSessionToken")
    assert len(token.SessionTokenId) >= 43 and token.SessionTokenType == 1
    expires = datetime.datetime.fromisoformat(token.ExpiresAt.replace("Z", "+00:00"))
    left = expires - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=28) < left <= datetime.timedelta(minutes=31), token.ExpiresAt
    ok(svc.IsSessionTokenValid(**c, authServerPartnerUserLoginName="mandy", sessionTokenId=token.SessionTokenId),
       "IsSessionTokenValid")
    assert server.call("is_session_token_valid", sessionTokenId=token.SessionTokenId)["errorCode"] == 0
    ok(svc.ExpireSessionToken(**c, authServerPartnerUserLoginName="", sessionTokenId=token.SessionTokenId),
       "ExpireSessionToken")
    gone = svc.IsSessionTokenValid(**c, sessionTokenId=token.SessionTokenId)
    assert gone.ErrorCode == 9107, gone
    assert server.call("is_session_token_valid", sessionTokenId=token.SessionTokenId)["errorCode"] == 9107

    ok(svc.DeleteUser(**c, authServerPartnerUserLoginName="mandy", removeRelated=False), "DeleteUser")
    assert server.call("find_user", username="mandy")["errorCode"] == 9001
    missing = svc.FindUser(**c, authServerPartnerUserLoginName="mandy")
    assert missing.ErrorCode == 9001 and missing.Email is None, missing
    # a wrong account key is 9000, with nothing else looked at
    wrong = svc.FindUser(authServerPartnerLoginName=c["authServerPartnerLoginName"],
                         authServerPartnerLoginPassword="wrong", authServerPartnerUserLoginName="marty")
    assert wrong.ErrorCode == 9000 and wrong.Email is None, wrong


def json_user(server, username):
    reply = server.call("find_user", username=username)
    assert reply["errorCode"] == 0, reply
    return reply


def test_oath_device_lifecycle(server):
    svc = soap_client(server).service
    c = creds(server)
    hotp = pyotp.HOTP(SEED_B32)
    ok(svc.AddUser(**c, authServerPartnerUserLoginName="olga", pw="pw-olga", userStatus=0), "AddUser")
    dev = server.call("add_oath_device", username="olga", secretKeyHex=SEED_HEX, otpType=1, psn="TESS-E2E-1")
    assert dev["errorCode"] == 0, dev
    psn, device_id = dev["psn"], dev["deviceId"]
    user = {"authServerPartnerUserLoginName": "olga"}

    ok(svc.ActiveDevice(**c, **user, otp1=hotp.at(0), otp2=hotp.at(1), printedSerialNumber=psn), "ActiveDevice")
    ok(svc.ValidateOTP(**c, **user, authOtp=hotp.at(2), printedSerialNumber=psn), "ValidateOTP")
    replay = svc.ValidateOTP(**c, **user, authOtp=hotp.at(2), printedSerialNumber=psn)
    assert replay.ErrorCode == 9002, replay
    wrong = svc.ValidateOTP(**c, **user, authOtp="000000" if hotp.at(3) != "000000" else "111111", printedSerialNumber=psn)
    assert wrong.ErrorCode == 9003, wrong
    ok(svc.SynchronizeDevice(**c, **user, otp1=hotp.at(20), otp2=hotp.at(21), printedSerialNumber=psn),
       "SynchronizeDevice")
    ok(svc.ValidateOTP(**c, **user, authOtp=hotp.at(22), printedSerialNumber=""), "ValidateOTP after sync")

    info = ok(svc.FindDevice(**c, **user, printedSerialNumber=psn), "FindDevice")
    assert (info.Psn, info.DeviceId, info.Assigned, info.DeviceType, info.OtpType, info.DeviceStatus, info.Username) == (
        psn, device_id, 1, 13, 1, 0, "olga")
    found = ok(svc.FindUser(**c, **user), "FindUser")
    [d] = found.Devices.DeviceInfo
    assert (d.Psn, d.TokenID) == (psn, device_id)

    qr = ok(svc.ProvisionQRCode(**c, **user, deviceID=device_id, accountName="olga@example.com"), "ProvisionQRCode")
    assert qr.QRCodeURL.startswith("data:image/"), qr.QRCodeURL[:40]
    app = pyotp.parse_uri(qr.OtpauthUri)  # an authenticator app provisioned from the QR code
    assert app.secret == SEED_B32
    ok(svc.ValidateOTP(**c, **user, authOtp=app.at(0), printedSerialNumber=psn), "ValidateOTP from the provisioned app")

    ok(svc.UnassignDevice(**c, **user, printedSerialNumber=psn), "UnassignDevice")
    assert server.call("find_device", psn=psn)["assigned"] == 0
    ok(svc.AssginDevice(**c, **user, printedSerialNumber=psn, force=True), "AssginDevice")
    assert svc.FindDevice(**c, printedSerialNumber=psn).Assigned == 1
    ok(svc.ValidateOTP(**c, **user, authOtp=app.at(1), printedSerialNumber=psn), "ValidateOTP after reassign")


class Sink:
    """A local SMTP server that keeps every message."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def wait(self, count: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"no email within {timeout} s (got {len(self.messages)})"
            time.sleep(0.05)
        return self.messages[count - 1]


@pytest.fixture
def smtp_sink():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


def test_send_otp_by_email_then_validate(start_server, backend, smtp_sink):
    sink, port = smtp_sink
    server = start_server(backend, config_toml=(
        f'[delivery.email]\nprovider = "smtp"\nsmtp_url = "smtp://127.0.0.1:{port}"\nfrom = "mfa@example.com"\n'))
    svc = soap_client(server).service
    c = creds(server)
    user = {"authServerPartnerUserLoginName": "sam"}
    ok(svc.AddUser(**c, **user, email="sam@example.com", pw="pw-sam", userStatus=0), "AddUser")

    bad = svc.SendOTP(**c, **user, printedSerialNumber="", deliveryMethod=7)
    assert bad.ErrorCode == 9044, bad
    ok(svc.SendOTP(**c, **user, printedSerialNumber="", deliveryMethod=1), "SendOTP email")  # 1 = email
    msg = sink.wait(1)
    assert msg["To"] == "sam@example.com", msg["To"]
    body = msg.get_body(preferencelist=("plain", "html")).get_content()
    m = re.search(r"\b(\d{6,8})\b", body)
    assert m, body
    code = m.group(1)
    ok(svc.ValidateOTP(**c, **user, authOtp=code, printedSerialNumber=""), "ValidateOTP sent code")
    again = svc.ValidateOTP(**c, **user, authOtp=code, printedSerialNumber="")
    assert again.ErrorCode != 0, again


class SoftU2F:
    """A software FIDO U2F authenticator (raw message formats, FIDO U2F v1.1) with a self-signed attestation."""

    def __init__(self):
        self.attestation_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tessera e2e soft U2F")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.attestation_key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
                     .sign(self.attestation_key, hashes.SHA256()))
        self.keys: dict[bytes, ec.EllipticCurvePrivateKey] = {}
        self.counter = 0

    @staticmethod
    def client_data(typ: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"typ": typ, "challenge": challenge, "origin": origin}, separators=(",", ":")).encode()

    def register(self, app_id: str, challenge: str, origin: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        handle = os.urandom(64)
        self.keys[handle] = key
        cd = self.client_data("navigator.id.finishEnrollment", challenge, origin)
        signed = b"\x00" + hashlib.sha256(app_id.encode()).digest() + hashlib.sha256(cd).digest() + handle + public
        sig = self.attestation_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        reg = b"\x05" + public + bytes([len(handle)]) + handle + self.cert.public_bytes(serialization.Encoding.DER) + sig
        return b64u(reg), b64u(cd)

    def sign(self, app_id: str, challenge: str, origin: str, key_handle: str) -> tuple[str, str]:
        handle = base64.urlsafe_b64decode(key_handle + "=" * (-len(key_handle) % 4))
        self.counter += 1
        cd = self.client_data("navigator.id.getAssertion", challenge, origin)
        counter = self.counter.to_bytes(4, "big")
        signed = hashlib.sha256(app_id.encode()).digest() + b"\x01" + counter + hashlib.sha256(cd).digest()
        sig = self.keys[handle].sign(signed, ec.ECDSA(hashes.SHA256()))
        return b64u(b"\x01" + counter + sig), b64u(cd)


def test_u2f_register_sign_and_delete(server):
    svc = soap_client(server).service
    c = creds(server)
    added = ok(svc.AddU2FUser(**c, firstName="Una", lastName="Key", loginName="una", loginPassword="pw-una",
                              email="una@example.com", mobilePhone="+1(800)200-8411", addDeviceOnly=False,
                              notificationMethod=0), "AddU2FUser")
    assert added.DeviceId and added.Psn
    extra = ok(svc.EnrollUser(**c, loginName="una", deviceType=12, otpType=8, addDeviceOnly=True,
                              notificationMethod=0), "EnrollUser")
    assert extra.Psn and extra.Psn != added.Psn
    assert server.call("validate_user", username="una", pw="pw-una")["errorCode"] == 0
    user = {"authServerPartnerUserLoginName": "una"}
    token = SoftU2F()

    init = ok(svc.EnrollAppU2FInit(**c, **user, appId=APP_ID), "EnrollAppU2FInit")
    [req] = init.RegisterRequest.U2FRegisterRequest
    assert (req.AppId, req.Version) == (APP_ID, "U2F_V2") and req.Challenge and req.SessionId
    assert init.SignRequest is None
    registration, client_data = token.register(APP_ID, req.Challenge, APP_ID)
    enrolled = ok(svc.EnrollAppU2F(**c, **user, printedSerialNumber="", securityKeyName="My First Key",
                                   b64RegistrationData=registration, b64SessionId=req.SessionId,
                                   b64ClientData=client_data, version="U2F_V2"), "EnrollAppU2F")
    assert enrolled.SecurityKeyName == "My First Key" and enrolled.KeyHandle
    # the session is single use
    reused = svc.EnrollAppU2F(**c, **user, b64RegistrationData=registration, b64SessionId=req.SessionId,
                              b64ClientData=client_data, version="U2F_V2")
    assert reused.ErrorCode != 0, reused

    # a second registration lists the first key as already registered
    again = ok(svc.EnrollAppU2FInit(**c, **user, appId=APP_ID), "EnrollAppU2FInit again")
    assert [s.KeyHandle for s in again.SignRequest.U2FSignRequest] == [enrolled.KeyHandle]

    sign_init = ok(svc.SignAppU2FInit(**c, appId=APP_ID, **user, printedSerialNumber=""), "SignAppU2FInit")
    [sreq] = sign_init.SignRequest.U2FSignRequest
    assert (sreq.KeyHandle, sreq.AppId, sreq.Version) == (enrolled.KeyHandle, APP_ID, "U2F_V2")
    signature, client_data = token.sign(APP_ID, sreq.Challenge, APP_ID, sreq.KeyHandle)
    signed = ok(svc.SignAppU2F(**c, **user, printedSerialNumber="", b64SessionId=sreq.SessionId,
                               b64ClientData=client_data, b64SignData=signature), "SignAppU2F")
    assert (signed.KeyHandle, signed.Counter) == (enrolled.KeyHandle, 1)

    ok(svc.DeleteSecurityKey(**c, **user, appId=APP_ID, keyIdentifier="My First Key", keyIdentifierType="1"),
       "DeleteSecurityKey")
    after = svc.SignAppU2FInit(**c, appId=APP_ID, **user, printedSerialNumber="")
    assert after.ErrorCode != 0, after


def test_malformed_envelopes_get_faults(server):
    def post(body: str | bytes, action: str = '""'):
        r = requests.post(server.soap_url, data=body, timeout=30,
                          headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action})
        assert r.headers["content-type"] == "text/xml; charset=utf-8"
        assert "<s:Fault><faultcode>" in r.text, r.text
        return r

    assert post("not xml").status_code == 500
    lol = "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10 if i else "lol"}">' for i in range(10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE x [{lol}]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            '<s:Body><FindUser xmlns="http://tempuri.org/"><authServerPartnerUserLoginName>&l9;'
            '</authServerPartnerUserLoginName></FindUser></s:Body></s:Envelope>')
    started = time.monotonic()
    r = post(bomb)
    assert r.status_code == 500 and "DOCTYPE" in r.text and time.monotonic() - started < 10
    assert post("<x>" + "a" * (100 * 1024) + "</x>").status_code == 413
    find = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><FindUser xmlns="http://tempuri.org/">'
            '<authServerPartnerUserLoginName>x</authServerPartnerUserLoginName></FindUser></s:Body></s:Envelope>')
    r = post(find, action=f'"{ACTION}DeleteUser"')
    assert r.status_code == 500 and "does not match" in r.text
    r = post(find.replace("FindUser", "NoSuchMethod"))
    assert r.status_code == 500 and "unknown operation" in r.text
    # the server is still healthy
    assert server.get("/healthz").status_code == 200

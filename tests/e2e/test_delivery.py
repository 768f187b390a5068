"""Passcode delivery (docs/api.md) against real protocol peers on loopback.

- email: a real SMTP server (aiosmtpd) receives the message; the code in it validates once.
- sms / voice: an HTTP server speaking Twilio's API shape (path, basic auth, form fields, TwiML that says the
  digits); the generic JSON webhook too.
- a provider that refuses connections, answers 500 or is slow: the API still answers within its bound, the message
  is retried and delivered once the provider is back, and nothing is sent twice.
- kill -9 right after a send was acknowledged (the provider failing at that moment): after a restart the message is
  delivered.
- the `log` provider (no configuration): loud warning at start-up, the message in the log.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from conftest import free_port

REPLY_BOUND = 3.5  # seconds: send_oath_otp waits at most ~3 s for the first attempt
SID, TOKEN, FROM = "AC0123456789abcdef", "s3cret-auth-token", "+15005550006"


# ---------------------------------------------------------------------------------------------------------------------
# peers


class MailSink:
    """aiosmtpd handler: keeps every message."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.rcpts: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp():
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sink.port = port
    yield sink
    controller.stop()


class FakeProvider:
    """A Twilio-compatible API and a JSON webhook on one HTTP server.

    mode: "accept" | an HTTP status (int) | ("slow", seconds). `attempts` has every request; `delivered` those
    answered 2xx. stop() closes the port (connections refused); start() opens the same port again.
    """

    def __init__(self):
        self.port = free_port()
        self.mode: object = "accept"
        self.attempts: list[dict] = []
        self.delivered: list[dict] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeProvider":
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "raw": raw}
                ctype = req["headers"].get("content-type", "")
                if ctype.startswith("application/json"):
                    req["json"] = json.loads(raw)
                else:
                    req["form"] = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
                with provider.lock:
                    provider.attempts.append(req)
                    mode = provider.mode
                if isinstance(mode, tuple) and mode[0] == "slow":
                    time.sleep(mode[1])
                    mode = "accept"
                if mode == "accept":
                    with provider.lock:
                        provider.delivered.append(req)
                    body = json.dumps({"sid": "SM" + "0" * 32, "status": "queued"}).encode()
                    self.send_response(201)
                else:
                    body = json.dumps({"code": 20500, "message": "Internal Server Error", "status": mode}).encode()
                    self.send_response(int(mode))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def wait_delivered(self, n: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.delivered) >= n:
                    return list(self.delivered)
            time.sleep(0.05)
        with self.lock:
            return list(self.delivered)


@pytest.fixture
def provider():
    p = FakeProvider()
    yield p
    p.stop()


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def twilio_toml(p: FakeProvider, *, extra: str = "") -> str:
    return f"""
[otp]
send_limit = 50

[delivery]
{extra}

[delivery.sms]
provider = "twilio"
url = "{p.url}"
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "{FROM}"

[delivery.voice]
provider = "twilio"
url = "{p.url}"
account_sid = "{SID}"
auth_token = "{TOKEN}"
from = "{FROM}"

[delivery.email]
provider = "webhook"
url = "{p.url}/hook"
"""


def code_in(text: str) -> str:
    """The code in a message; voice messages spell it "1, 2, 3, 4, 5, 6"."""
    m = re.search(r"\d(?:[ ,]*\d){3,}", text)
    assert m, f"no code in {text!r}"
    return re.sub(r"\D", "", m.group(0))


def add_user(server, name: str, **kw) -> None:
    fields = {"mobile": "+1(800)200-8411", "email": f"{name}@example.com", **kw}
    reply = server.call("add_user", username=name, **fields)
    assert reply["errorCode"] == 0, reply


def send(server, user: str, method, **kw) -> tuple[dict, float]:
    started = time.monotonic()
    reply = server.call("send_oath_otp", username=user, deliveryMethod=method, **kw)
    return reply, time.monotonic() - started


def validate(server, user: str, code: str) -> dict:
    return server.call("validate_oath_otp", username=user, otp=code)


# ---------------------------------------------------------------------------------------------------------------------
# tests


def test_email_over_real_smtp(start_server, backend, smtp):
    server = start_server(backend, config_toml=f"""
[delivery.email]
provider = "smtp"
smtp_url = "smtp://127.0.0.1:{smtp.port}"
from = "Tessera <no-reply@tessera.test>"
subject = "Your {{account}} code"
template = "Hello {{username}}, your code is {{code}}. It expires in {{minutes}} minutes."
""")
    add_user(server, "mandy")
    reply, took = send(server, "mandy", "email")
    assert reply == {"type": "send_oath_otp", "errorCode": 0, "errorMessage": "OK"}, reply
    assert took < REPLY_BOUND
    deadline = time.monotonic() + 10
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert smtp.rcpts[0] == ["mandy@example.com"]
    assert msg["To"] == "mandy@example.com"
    assert "no-reply@tessera.test" in msg["From"]
    assert msg["Subject"] == f"Your {server.account['spAccountLoginName']} code"
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "Hello mandy" in body and "expires in 5 minutes" in body, body
    code = code_in(body)
    assert len(code) == 6
    assert code not in msg["Subject"]
    assert validate(server, "mandy", code)["errorCode"] == 0
    assert validate(server, "mandy", code)["errorCode"] == 9002
    # The code is in no log (only the `log` provider may write one).
    assert code not in server.stderr_text() + server.stdout_text()


def test_twilio_sms_and_voice_request_shape(start_server, provider):
    provider.start()
    server = start_server("sqlite", config_toml=twilio_toml(provider))
    add_user(server, "mandy")
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()

    reply, took = send(server, "mandy", "SMS")
    assert reply["errorCode"] == 0, reply
    assert took < REPLY_BOUND
    sms = provider.wait_delivered(1)[0]
    assert sms["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert sms["headers"]["authorization"] == auth
    assert sms["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert sms["form"]["To"] == "+18002008411"
    assert sms["form"]["From"] == FROM
    code = code_in(sms["form"]["Body"])
    assert validate(server, "mandy", code)["errorCode"] == 0

    reply, _ = send(server, "mandy", 2)  # SOAP numbering: 2 = voice
    assert reply["errorCode"] == 0, reply
    call = provider.wait_delivered(2)[1]
    assert call["path"] == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert call["headers"]["authorization"] == auth
    assert call["form"]["To"] == "+18002008411" and call["form"]["From"] == FROM
    twiml = call["form"]["Twiml"]
    assert twiml.startswith("<Response><Say>") and twiml.endswith("</Say></Response>"), twiml
    spelled = re.findall(r"\d(?:, \d){5}", twiml)
    assert len(spelled) == 2 and spelled[0] == spelled[1], twiml
    code = spelled[0].replace(", ", "")
    assert validate(server, "mandy", code)["errorCode"] == 0
    assert validate(server, "mandy", code)["errorCode"] == 9002

    # The webhook (configured for email here).
    reply, _ = send(server, "mandy", "email")
    assert reply["errorCode"] == 0, reply
    hook = provider.wait_delivered(3)[2]
    assert hook["path"] == "/hook"
    body = hook["json"]
    assert body["channel"] == "email" and body["to"] == "mandy@example.com"
    assert body["account"] == server.account["spAccountLoginName"]
    assert validate(server, "mandy", code_in(body["message"]))["errorCode"] == 0

    time.sleep(2.5)
    assert len(provider.attempts) == 3 and len(provider.delivered) == 3, "nothing sent twice"
    # The auth token appears in no log.
    assert TOKEN not in server.stderr_text() + server.stdout_text()


def test_provider_down_failing_or_slow(start_server, backend, provider):
    # Connection refused: nothing listens on the provider's port yet.
    server = start_server(backend, config_toml=twilio_toml(provider))
    add_user(server, "u")
    reply, took = send(server, "u", "sms")
    assert reply["errorCode"] == 0, reply
    assert took < REPLY_BOUND, took
    time.sleep(0.5)
    provider.start()
    got = provider.wait_delivered(1, timeout=20)
    assert len(got) == 1, "delivered once the provider is back"
    assert validate(server, "u", code_in(got[0]["form"]["Body"]))["errorCode"] == 0

    # HTTP 500 for a while.
    provider.mode = 500
    reply, took = send(server, "u", "sms")
    assert reply["errorCode"] == 0 and took < REPLY_BOUND, (reply, took)
    time.sleep(2.6)  # the first retry comes 2 s after the first attempt
    assert len(provider.attempts) >= 3, len(provider.attempts)
    provider.mode = "accept"
    got = provider.wait_delivered(2, timeout=20)
    assert len(got) == 2
    assert validate(server, "u", code_in(got[1]["form"]["Body"]))["errorCode"] == 0

    # Slow: the reply comes after the ~3 s bound, the attempt carries on and delivers once.
    provider.mode = ("slow", 6)
    reply, took = send(server, "u", "sms")
    assert reply["errorCode"] == 0, reply
    assert 2.5 <= took < 4.5, took
    got = provider.wait_delivered(3, timeout=20)
    assert len(got) == 3
    assert validate(server, "u", code_in(got[2]["form"]["Body"]))["errorCode"] == 0
    provider.mode = "accept"
    time.sleep(3)
    assert len(provider.delivered) == 3, "nothing sent twice"


def test_permanent_refusal_is_reported(start_server, provider):
    provider.start()
    provider.mode = 400
    server = start_server("sqlite", config_toml=twilio_toml(provider))
    add_user(server, "u")
    assert send(server, "u", "sms")[0]["errorCode"] == 9012
    assert send(server, "u", "voice")[0]["errorCode"] == 9012
    assert send(server, "u", "email")[0]["errorCode"] == 9031
    time.sleep(2.5)
    assert len(provider.attempts) == 3, "a permanent refusal is not retried"


def test_kill_right_after_ack_then_restart_delivers(start_server, backend, provider):
    provider.start()
    provider.mode = 500
    server = start_server(backend, config_toml=twilio_toml(provider))
    add_user(server, "u")
    reply, _ = send(server, "u", "sms")
    assert reply["errorCode"] == 0, reply
    assert len(provider.attempts) == 1 and not provider.delivered
    server.kill()
    provider.mode = "accept"
    time.sleep(3)
    assert not provider.delivered, "the dead server sent nothing"
    server.restart()
    got = provider.wait_delivered(1, timeout=20)
    assert len(got) == 1, "the acknowledged message survives kill -9"
    assert validate(server, "u", code_in(got[0]["form"]["Body"]))["errorCode"] == 0
    time.sleep(2.5)
    assert len(provider.delivered) == 1


def test_log_provider_warns_and_logs_the_message(start_server):
    server = start_server("sqlite")
    err = server.stderr_text()
    for ch in ("sms", "voice", "email"):
        assert f"DELIVERY CHANNEL {ch} USES THE `log` PROVIDER" in err, err
    add_user(server, "dev")
    reply, _ = send(server, "dev", "sms")
    assert reply["errorCode"] == 0, reply
    deadline = time.monotonic() + 5
    while "NOT SENT" not in server.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(l for l in server.stderr_text().splitlines() if "NOT SENT" in l)
    assert "WARN" in line and "+18002008411" in line, line
    assert validate(server, "dev", code_in(line.split("NOT SENT", 1)[1]))["errorCode"] == 0

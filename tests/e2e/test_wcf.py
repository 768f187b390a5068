"""The SOAP endpoint through a proxy that WCF tooling generates, as a SurePassID customer on .NET calls it.

Mono's WCF stack (Debian `mono-devel`) stands in for .NET: `svcutil` generates the proxy from the live `?wsdl`,
`mcs` compiles it with the client in `wcf/Client.cs`, and `mono` runs a scripted sequence through it over
BasicHttpBinding. The client prints every reply object as the proxy deserialized it, so a member the proxy failed
to read (wrong namespace, wrong order) shows up here as null / 0, and is asserted on. Codes come from independent
sources: the SMS code from the `log` delivery provider's line in the server log, the OATH codes from `oathtool`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

WCF_DIR = Path(__file__).parent / "wcf"
# RFC 4226 Appendix D seed ("12345678901234567890")
SEED_HEX = "3132333435363738393031323334353637383930"
DEFAULT_NS = "http://schemas.datacontract.org/2004/07/SurePassID.AuthServer"
ACME_NS = "http://schemas.datacontract.org/2004/07/Acme.Mfa.Contracts"
TOOL_TIMEOUT = 120


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: install the Debian package mono-devel (scripts/test does)", pytrace=False)
    return path


def client_env() -> dict[str, str]:
    """Mono's environment: loopback only, never through a proxy from the environment."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=cwd, env=client_env(), capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert r.returncode == 0, f"{args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def build_client(server, workdir: Path) -> Path:
    """Generates the proxy from the server's live ?wsdl, compiles it with Client.cs; returns client.exe."""
    workdir.mkdir(parents=True, exist_ok=True)
    proxy = workdir / "Proxy.cs"
    gen = run([tool("svcutil"), "--noLogo", "--noConfig", f"--out={proxy.name}", server.soap_url + "?wsdl"], workdir)
    assert "warning" not in (gen.stdout + gen.stderr).lower(), gen.stdout + gen.stderr
    code = proxy.read_text()
    # the generated contract carries the WSDL's actions, not Action="*"
    for method in ("FindUser", "SendOTP", "ProvisionQRCode"):
        action = f"http://tempuri.org/ISurePassAuthServerWCFService/{method}"
        assert f'Action = "{action}"' in code or f'Action="{action}"' in code, f"{method}: no action in the proxy"
        assert f'"{action}Response"' in code, f"{method}: no reply action in the proxy"
    assert 'Action = "*"' not in code and 'Action="*"' not in code
    exe = workdir / "client.exe"
    run([tool("mcs"), "-nologo", "-warn:0", f"-out:{exe.name}", "-r:System.ServiceModel", "-r:System.Runtime.Serialization",
         proxy.name, str(WCF_DIR / "Client.cs")], workdir)
    return exe


class Run:
    """One run of client.exe: its REPLY lines by method (in order), its CHECK lines and its other output."""

    def __init__(self):
        self.replies: list[tuple[str, dict]] = []
        self.checks: list[str] = []
        self.unread: list[str] = []
        self.transcript: list[str] = []

    def reply(self, method: str, index: int = 0) -> dict:
        found = [r for m, r in self.replies if m == method]
        assert len(found) > index, f"no reply #{index} of {method}: {self.transcript}"
        return found[index]


def run_client(exe: Path, server, mode: str, answer=None, timeout: float = 90) -> Run:
    """Runs the client against `server`, answering its ASK lines with `answer(what, arg) -> str`."""
    proc = subprocess.Popen(
        [tool("mono"), str(exe), server.soap_url, server.account["spAccountLoginName"],
         server.account["spAccountLoginKey"], mode],
        cwd=exe.parent, env=client_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    result = Run()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the client did not finish within {timeout} s: {result.transcript}"
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                break
            result.transcript.append(line)
            kind, _, rest = line.partition(" ")
            if kind == "REPLY":
                method, _, body = rest.partition(" ")
                result.replies.append((method, json.loads(body)))
            elif kind == "UNREAD":
                result.unread.append(rest)
            elif kind == "CHECK":
                result.checks.append(rest)
            elif kind == "ASK":
                assert answer, f"unexpected question {rest}"
                what, _, arg = rest.partition(" ")
                proc.stdin.write(answer(what, arg) + "\n")
                proc.stdin.flush()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert code == 0, f"client exited {code}:\n" + "\n".join(result.transcript) + "\n" + stderr
    assert result.transcript and result.transcript[-1] == "DONE", result.transcript
    print(f"--- {mode} through the generated proxy ({server.backend}) ---")
    print("\n".join(result.transcript))
    return result


def hotp(counter: int) -> str:
    r = subprocess.run(["oathtool", "--hotp", "-c", str(counter), SEED_HEX], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def sent_code(server, seen: int) -> str:
    """The code in the (seen+1)-th `NOT SENT` line of the `log` delivery provider."""
    deadline = time.monotonic() + 15
    while True:
        lines = [l for l in server.stderr_text().splitlines() if "NOT SENT" in l]
        if len(lines) > seen:
            m = re.search(r"\d(?:[ ,]*\d){3,}", lines[seen].split("NOT SENT", 1)[1])
            assert m, lines[seen]
            return re.sub(r"\D", "", m.group(0))
        assert time.monotonic() < deadline, "no NOT SENT line in the server log"
        time.sleep(0.05)


def answerer(server):
    devices: dict[str, dict] = {}

    def answer(what: str, arg: str) -> str:
        if what == "sent-code":
            return sent_code(server, 0)
        if what == "hotp":
            return hotp(int(arg))
        if what == "oath-device":
            dev = server.call("add_oath_device", username=arg, secretKeyHex=SEED_HEX, otpType=1, psn="TESS-WCF-0001")
            assert dev["errorCode"] == 0, dev
            devices[arg] = dev
            return f"{dev['psn']} {dev['deviceId']}"
        raise AssertionError(f"unknown question {what}")

    answer.devices = devices
    return answer


def check_sequence(server, result: Run, devices: dict) -> None:
    """What the replies must hold, member by member, as the proxy read them."""
    assert result.unread == [], f"reply elements the proxy did not read: {result.unread}"
    ok = {"ErrorCode": 0, "ErrorMsg": "OK"}
    assert result.reply("AddUser") == ok
    found = result.reply("FindUser")
    assert found == {**ok, "Devices": [], "Email": "wanda@example.com", "FirstName": "Wanda", "LastName": "Client",
                     "Mobile": "+1(800)200-8411", "UserStatus": 0, "Username": "wanda"}, found
    assert result.reply("ValidateUser") == {**found}
    refused = result.reply("ValidateUser", 1)
    assert refused["ErrorCode"] == 9001 and refused["ErrorMsg"] == "User login failure [wanda]", refused
    assert refused["Email"] is None and refused["Devices"] is None, refused

    token = result.reply("CreateSessionToken")
    assert token["ErrorCode"] == 0 and token["SessionTokenType"] == 1, token
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token["SessionTokenId"]), token
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", token["ExpiresAt"]), token
    assert result.reply("IsSessionTokenValid") == {**ok, "ExpiresAt": token["ExpiresAt"], "SessionTokenType": 1}
    assert result.reply("ExpireSessionToken")["ErrorCode"] == 0
    gone = result.reply("IsSessionTokenValid", 1)
    assert gone["ErrorCode"] == 9107 and gone["ErrorMsg"] == "Session token invalid or expired", gone

    assert result.reply("SendOTP") == ok
    assert result.reply("ValidateOTP") == ok
    replay = result.reply("ValidateOTP", 1)
    assert replay["ErrorCode"] == 9002 and replay["ErrorMsg"], replay

    dev = devices["wanda"]
    assert result.reply("FindDevice") == {
        **ok, "Assigned": 1, "DeviceId": dev["deviceId"], "DeviceStatus": 0, "DeviceType": 13, "OtpType": 1,
        "Psn": dev["psn"], "Username": "wanda"}
    for method in ("ActiveDevice", "SynchronizeDevice"):
        assert result.reply(method) == ok, method
    assert result.reply("ValidateOTP", 2) == ok and result.reply("ValidateOTP", 3) == ok
    qr = result.reply("ProvisionQRCode")
    assert qr["ErrorCode"] == 0 and qr["DeviceId"] == dev["deviceId"] and qr["Psn"] == dev["psn"], qr
    assert qr["QRCodeURL"].startswith("data:image/"), qr["QRCodeURL"][:40]
    assert qr["OtpauthUri"].startswith("otpauth://hotp/") and "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" in qr["OtpauthUri"]
    listed = result.reply("FindUser", 1)["Devices"]
    # the out-of-band device SendOTP created (deviceType 15) and the OATH one
    assert sorted((d["DeviceType"], d["Psn"] == dev["psn"], d["TokenID"] == dev["deviceId"], d["OtpType"],
                   d["DeviceStatus"], bool(d["Psn"]), d["TokenID"] == d["DeviceId"]) for d in listed) == [
        (13, True, True, 1, 0, True, True), (15, False, False, 1, 0, True, True)], listed

    enrolled = result.reply("EnrollUser")
    assert enrolled["ErrorCode"] == 0 and enrolled["ErrorMsg"] == "OK" and enrolled["Psn"] and enrolled["DeviceId"], enrolled
    assert result.reply("DeleteUser") == ok
    deleted = result.reply("FindUser", 2)
    assert deleted["ErrorCode"] == 9001 and deleted["ErrorMsg"] == "User login failure [wanda]", deleted
    # and the other front door agrees
    assert server.call("find_user", username="wanda")["errorCode"] == 9001
    assert len(result.checks) >= 20, result.checks


def test_generated_proxy_runs_the_sequence(start_server, backend, tmp_path):
    server = start_server(backend)
    exe = build_client(server, tmp_path / "default")
    answer = answerer(server)
    result = run_client(exe, server, "sequence", answer)
    check_sequence(server, result, answer.devices)
    wsdl = server.get(server.soap_url.removeprefix(server.url) + "?wsdl").text
    assert f'targetNamespace="{DEFAULT_NS}"' in wsdl


def test_generated_proxy_with_a_configured_data_contract_namespace(start_server, tmp_path):
    server = start_server("sqlite", config_toml=f'[soap]\ndata_contract_namespace = "{ACME_NS}"\n')
    exe = build_client(server, tmp_path / "acme")
    proxy = (tmp_path / "acme" / "Proxy.cs").read_text()
    assert f'Namespace="{ACME_NS}"' in proxy.replace(" = ", "=") and DEFAULT_NS not in proxy
    answer = answerer(server)
    result = run_client(exe, server, "sequence", answer)
    check_sequence(server, result, answer.devices)

    # The same proxy against a server left on the default namespace reads nothing of the reply: WCF drops the
    # members of a namespace it does not expect, and the unread ErrorCode reads as 0. Hence the setting.
    other = start_server("sqlite", env={"TESSERA_SOAP__DATA_CONTRACT_NAMESPACE": None})
    probe = run_client(exe, other, "probe")
    [unread] = probe.unread
    assert unread.startswith(f"FindUser {{{DEFAULT_NS}}}Devices {{{DEFAULT_NS}}}Email {{{DEFAULT_NS}}}ErrorCode "), unread
    assert probe.reply("FindUser") == {
        "Devices": None, "Email": None, "ErrorCode": 0, "ErrorMsg": None, "FirstName": None, "LastName": None,
        "Mobile": None, "UserStatus": 0, "Username": None}
    # while with its own namespace (env this time) the same probe reads the real answer, 9001
    moved = start_server("sqlite", env={"TESSERA_SOAP__DATA_CONTRACT_NAMESPACE": ACME_NS})
    probe = run_client(exe, moved, "probe")
    assert probe.unread == []
    reply = probe.reply("FindUser")
    assert reply["ErrorCode"] == 9001 and reply["ErrorMsg"].startswith("User login failure ["), reply

"""Crash loop: 20 cycles of `kill -9` under mixed load (validate_oath_otp, send_oath_otp, add_user + add_oath_device),
on SQLite and on PostgreSQL. After each restart no acknowledged write is missing: every acknowledged add_user and
add_oath_device exists, and every acknowledged OTP validation has consumed its code (replaying it is refused). No
OTP is accepted twice across all cycles (replays are also tried during the load, from another connection).

The counts (acknowledged writes, validations, replays refused) are printed at the end of each run."""

from __future__ import annotations

import base64
import json
import random
import threading
import time

import pyotp
import pytest
import requests

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"
CYCLES = 20
VALIDATORS = 4  # users with an HOTP device, one validating thread each
SEED_HEX = "3132333435363738393031323334353637383930"
HOTP = pyotp.HOTP(base64.b32encode(bytes.fromhex(SEED_HEX)).decode())
ENV = {
    # Replays are failures; the device must not lock while the test replays thousands of codes.
    "TESSERA_OTP__MAX_FAILURES": "1000000000",
    "TESSERA_OTP__SEND_LIMIT": "1000000000",
}


class Load:
    """Mixed load against one server until `stop` is set or the server dies; records what was acknowledged."""

    def __init__(self, server, users: list[str], next_counter: dict[str, int], cycle: int):
        self.server = server
        self.url = server.api_url
        self.account = dict(server.account)
        self.users = users
        self.next_counter = next_counter
        self.cycle = cycle
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, int, str]] = []  # (user, counter, code) acknowledged with errorCode 0
        self.added_users: list[str] = []
        self.added_devices: list[tuple[str, str]] = []  # (user, psn)
        self.sends = 0
        self.replays_refused = 0
        self.double_accepts: list[tuple[str, int]] = []

    def _post(self, session: requests.Session, body: dict) -> dict | None:
        """The reply, or None when the request was not acknowledged (server killed)."""
        try:
            r = session.post(self.url, data=json.dumps({**self.account, **body}),
                             headers={"Content-Type": "application/json"}, timeout=10)
        except requests.RequestException:
            return None
        if r.status_code != 200:
            raise AssertionError(f"HTTP {r.status_code}: {r.text[:500]}")
        return r.json()

    def _session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        return s

    def validator(self, user: str) -> None:
        s, replayer = self._session(), self._session()
        while not self.stop.is_set():
            counter = self.next_counter[user]
            code = HOTP.at(counter)
            reply = self._post(s, {"type": "validate_oath_otp", "username": user, "otp": code})
            if reply is None:
                return
            self.next_counter[user] = counter + 1
            if reply["errorCode"] != 0:
                continue
            with self.lock:
                self.accepted.append((user, counter, code))
            # The same code again, at once, from another connection: refused.
            again = self._post(replayer, {"type": "validate_oath_otp", "username": user, "otp": code})
            if again is None:
                return
            with self.lock:
                if again["errorCode"] == 0:
                    self.double_accepts.append((user, counter))
                else:
                    self.replays_refused += 1

    def sender(self) -> None:
        s = self._session()
        while not self.stop.is_set():
            reply = self._post(s, {"type": "send_oath_otp", "username": random.choice(self.users),
                                   "deliveryMethod": "email"})
            if reply is None:
                return
            assert reply["errorCode"] == 0, reply
            with self.lock:
                self.sends += 1

    def enroller(self, tag: int) -> None:
        s = self._session()
        n = 0
        while not self.stop.is_set():
            user = f"c{self.cycle}-e{tag}-{n}"
            n += 1
            reply = self._post(s, {"type": "add_user", "username": user, "email": f"{user}@example.com"})
            if reply is None:
                return
            assert reply["errorCode"] == 0, reply
            with self.lock:
                self.added_users.append(user)
            reply = self._post(s, {"type": "add_oath_device", "username": user, "secretKeyHex": SEED_HEX,
                                   "OtpType": 1, "OtpLength": 6})
            if reply is None:
                return
            assert reply["errorCode"] == 0, reply
            with self.lock:
                self.added_devices.append((user, reply["psn"]))

    def run(self, kill_after: float) -> None:
        threads = [threading.Thread(target=self.validator, args=(u,)) for u in self.users]
        threads += [threading.Thread(target=self.sender), threading.Thread(target=self.enroller, args=(0,)),
                    threading.Thread(target=self.enroller, args=(1,))]
        for t in threads:
            t.start()
        time.sleep(kill_after)
        self.server.kill()  # kill -9 while requests are in flight
        self.stop.set()
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "a load thread hung"


def test_kill_9_loses_no_acknowledged_write_and_accepts_no_otp_twice(start_server, backend):
    random.seed(16)
    server = start_server(backend, env=ENV)
    users = [f"validator-{i}" for i in range(VALIDATORS)]
    for u in users:
        assert server.call("add_user", username=u, email=f"{u}@example.com")["errorCode"] == 0
        assert server.call("add_oath_device", username=u, secretKeyHex=SEED_HEX, OtpType=1,
                           OtpLength=6)["errorCode"] == 0
    next_counter = {u: 0 for u in users}
    all_users: list[str] = []
    totals = {"acknowledged_add_user": 0, "acknowledged_add_oath_device": 0, "acknowledged_send_oath_otp": 0,
              "acknowledged_validations": 0, "replays_refused_during_load": 0, "replays_refused_after_restart": 0}
    accepted_ever: set[tuple[str, int]] = set()
    started = time.monotonic()
    for cycle in range(CYCLES):
        load = Load(server, users, next_counter, cycle)
        load.run(kill_after=random.uniform(0.8, 1.6))
        server.start()  # same data dir / database, after a crash
        assert not load.double_accepts, f"cycle {cycle}: a code was accepted twice: {load.double_accepts}"
        # Every acknowledged user and device is there.
        for user in load.added_users:
            reply = server.call("find_user", username=user)
            assert reply["errorCode"] == 0, f"cycle {cycle}: acknowledged add_user {user} lost: {reply}"
        for user, psn in load.added_devices:
            reply = server.call("find_device", psn=psn)
            assert reply["errorCode"] == 0, f"cycle {cycle}: acknowledged device {psn} of {user} lost: {reply}"
        # Every acknowledged validation consumed its code: replaying it is refused.
        for user, counter, code in load.accepted:
            assert (user, counter) not in accepted_ever, f"{user} counter {counter} accepted in two cycles"
            accepted_ever.add((user, counter))
            reply = server.call("validate_oath_otp", username=user, otp=code)
            assert reply["errorCode"] != 0, f"cycle {cycle}: acknowledged code {counter} of {user} accepted again"
            totals["replays_refused_after_restart"] += 1
        all_users += load.added_users
        totals["acknowledged_add_user"] += len(load.added_users)
        totals["acknowledged_add_oath_device"] += len(load.added_devices)
        totals["acknowledged_send_oath_otp"] += load.sends
        totals["acknowledged_validations"] += len(load.accepted)
        totals["replays_refused_during_load"] += load.replays_refused
    # At the end, once more: every user acknowledged in any cycle exists (later crashes lost none of them).
    for u in all_users:
        assert server.call("find_user", username=u)["errorCode"] == 0, f"acknowledged user {u} lost"
    elapsed = time.monotonic() - started
    print(f"crash loop ({backend}, {CYCLES} cycles, {elapsed:.0f} s):", json.dumps(totals))
    assert totals["acknowledged_validations"] >= CYCLES, totals
    assert totals["acknowledged_add_user"] >= CYCLES, totals
    assert totals["acknowledged_send_oath_otp"] >= CYCLES, totals

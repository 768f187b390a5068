"""Smoke tests: the server starts on each backend, answers /healthz, and the basic user round trip works."""


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200, r.text


def test_add_user_then_find_user(server):
    reply = server.call("add_user", username="alice", pw="S3cret!pass", firstName="Alice")
    assert reply["errorCode"] == 0, reply

    reply = server.call("find_user", username="alice")
    assert reply["errorCode"] == 0, reply
    assert reply["firstName"] == "Alice"
    assert reply["Devices"] == []


def test_wrong_account_key_is_9000(server):
    reply = server.call("find_user", username="alice", spAccountLoginKey="not-the-key")
    assert reply["errorCode"] == 9000, reply

    reply = server.call("add_user", username="mallory", pw="S3cret!pass", spAccountLoginName="no-such-account")
    assert reply["errorCode"] == 9000, reply

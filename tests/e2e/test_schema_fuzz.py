"""Schema-driven fuzzing of the JSON API with schemathesis, from the server's own `/openapi.json` (OpenAPI 3.1):
requests that follow the schema (each operation's fields, every scalar form) and requests that break it (wrong types,
missing fields, unknown types), half of them with the real account keys so that they reach the operations.

Every answer must be the envelope: HTTP 200 (413 / 408 only for the body limits), `application/json`, a JSON object
with a string `type`, an integer `errorCode` from the documented table and a string `errorMessage`; never a 5xx.
The bound (examples per mode and method) keeps the run near a minute."""

from __future__ import annotations

import collections
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error

API_PATH = "/AuthServer/REST/U2F/U2FServer.aspx"
EXAMPLES = 250  # per (method, generation mode)


def test_schemathesis_finds_no_5xx_and_no_invalid_envelope(start_server, backend):
    server = start_server(backend)
    doc = server.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    codes = set(doc["components"]["schemas"]["Envelope"]["properties"]["errorCode"]["enum"])
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    session = requests.Session()
    session.trust_env = False
    stats: collections.Counter = collections.Counter()
    error_codes: collections.Counter = collections.Counter()
    types_reached: set[str] = set()

    def check(case, with_account: bool) -> None:
        if with_account and isinstance(case.body, dict):
            case.body.update(server.account)
        response = case.call(base_url=server.url, session=session, timeout=30)
        stats["requests"] += 1
        stats[f"http_{response.status_code}"] += 1
        case.validate_response(
            response,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance],
        )
        assert response.status_code in (200, 408, 413), response.status_code
        content_type = response.headers.get("content-type")
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type == "application/json; charset=utf-8", response.headers
        envelope = json.loads(response.content)
        assert isinstance(envelope, dict), envelope
        assert isinstance(envelope.get("type"), str), envelope
        assert type(envelope.get("errorCode")) is int and envelope["errorCode"] in codes, envelope
        assert isinstance(envelope.get("errorMessage"), str), envelope
        error_codes[envelope["errorCode"]] += 1
        if envelope["errorCode"] != 9000 and isinstance(case.body, dict) and isinstance(case.body.get("type"), str):
            types_reached.add(case.body["type"])

    for method in ("POST", "GET"):
        operation = schema[API_PATH][method]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), with_account=st.booleans())
            def run(case, with_account):
                check(case, with_account)

            run()
    summary = {"stats": dict(stats), "errorCodes": dict(sorted(error_codes.items())), "typesReached": len(types_reached)}
    print("schemathesis summary:", json.dumps(summary))
    assert stats["requests"] >= 4 * EXAMPLES * 0.8, summary
    assert not any(k.startswith("http_5") for k in stats), summary
    # No generated input reaches the database as an error (e.g. a NUL in a name, which PostgreSQL refuses).
    assert 9010 not in error_codes and 9199 not in error_codes, summary
    # The fuzzing went past account authentication into the operations.
    assert len(types_reached) >= 10, summary
    assert server.get("/healthz").status_code == 200

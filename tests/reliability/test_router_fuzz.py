"""Property-based fuzzing of the router through its own OpenAPI schema (schemathesis): requests that fit the schema
and requests that break it, for every operation, bounded in count and time. No answer is a 5xx, every 4xx is in the
OpenAI error shape, and every response carries a request id."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serve.support import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # in `make test` too: about a minute

EXAMPLES = 40  # per operation and generation mode
TIME_CAP_S = 240.0


def test_fuzzed_requests_get_no_5xx_and_openai_errors(served, reliability):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    url = served[1]
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json", timeout=60).json())
    seen: list[tuple[str, int]] = []
    reliability.record(load="router OpenAPI schema", faults="fuzzed requests (schemathesis)", unit="requests")
    deadline = time.monotonic() + TIME_CAP_S
    def fuzz(operation, mode):
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case) -> None:
            if time.monotonic() > deadline:
                return
            response = case.call(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            seen.append((operation.label, response.status_code))
            assert response.status_code < 500, (case.body, response.status_code, response.text[:300])
            assert response.headers.get("x-request-id"), operation.label
            if response.status_code >= 400:
                error = response.json()["error"]
                assert {"message", "type", "param", "code"} <= set(error), response.text[:300]

        try:
            check()
        except Unsatisfiable:  # an operation without inputs has nothing to break
            assert mode is GenerationMode.NEGATIVE, operation.label

    for operation in (result.ok() for result in schema.get_all_operations()):
        for mode in GenerationMode:
            fuzz(operation, mode)
    statuses = sorted({s for _, s in seen})
    reliability.record(load=f"{len({op for op, _ in seen})} operations, schema-valid and schema-breaking",
                       items=len(seen), fivexx=sum(s >= 500 for _, s in seen), statuses=" ".join(map(str, statuses)))
    assert len(seen) >= 100 and any(s < 300 for s in statuses) and any(s >= 400 for s in statuses), statuses

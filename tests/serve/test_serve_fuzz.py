"""Property-based fuzzing of every route published in /openapi.json (schemathesis): no answer is a 5xx.

Valid and invalid inputs (negative mode: wrong types, missing fields, odd strings) against a real
service with no workers, so created tasks just queue. Bounded to about 100 requests in all.
(Driven through hypothesis directly: schemathesis' lazy pytest fixtures do not run under pytest 9.)
"""

from __future__ import annotations

import pytest
from conftest import QUEUE_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from serve_helpers import ServiceProcess

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the test extra)")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

EXAMPLES_PER_ROUTE = 8  # 8 routes × 8 × 2 modes ≈ 100 requests (fewer where inputs run out)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_route_answers_5xx(queue_only: ServiceProcess, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{queue_only.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    sent: list[str] = []
    skipped: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {QUEUE_KEY}"}, checks=[not_a_server_error],
                                   timeout=10)
            sent.append(operation.label)

        try:
            fuzz()
        except Unsatisfiable:  # nothing to make invalid: a route without parameters or body
            assert mode == GenerationMode.NEGATIVE, operation.label
            skipped.append(operation.label)
    assert len(set(sent)) == len(operations) - len(skipped) and len(skipped) <= 2, skipped

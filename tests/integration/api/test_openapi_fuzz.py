"""schemathesis against the API's own ``/openapi.json``: generated requests, valid and invalid, never
get a server error, and answers conform to the document (status codes, content types, bodies).

The module's database holds a session of the ids the document uses as examples
(``robot_001`` / ``session-1``), landed by the real sinks (MongoDB and S3 only: no shared Redis
key is written), so generated requests reach the data paths too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("schemathesis")  # a dev dependency: skip, do not fail, where it is missing

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from robostream.api import openapi_document
from robostream.config import Settings
from robostream.topics import StatsResolution
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, now_us

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(modes=list(GenerationMode))  # valid and invalid requests
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(api_settings: Settings, landing: Landing) -> Iterator[RunningApi]:
    start = now_us() - 15 * 60_000_000
    landing.session_start("robot_001", "session-1", start)
    records = SimulatedRobot("robot_001", "session-1", start, rate_hz=1.0).records(30)
    landing.telemetry(records, to=("mongo",))
    landing.stats(records, resolutions=(StatsResolution.MINUTE,), to=("mongo",))
    for seq in range(3):
        landing.image("robot_001", "session-1", start + seq * 1_000_000, seq=seq, to=("s3", "mongo"))
    with RunningApi(api_settings) as running:
        yield running


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_and_answers_match_the_document(case: schemathesis.Case,
                                                        fuzzed_api: RunningApi) -> None:
    case.call_and_validate(base_url=fuzzed_api.url, checks=CHECKS, timeout=60)

"""Hypothesis fuzzing of the gateway's decoding and validation, in process (the bulk of the cases).

The gateway's ingest calls ``decode_frame(frame, fmt, max_messages=gateway.max_batch_messages)``
on every frame; whatever comes, it must answer with a :class:`ValidationError` carrying a code
from the protocol and a sentence (never another exception, never a hang), so the gateway can
nack and dead-letter it.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from robostream.gateway.protocol import ALL_CODES
from robostream.schemas import ValidationError, decode_frame
from tests.reliability.badinput import STRATEGIES, Case, corpus
from tests.reliability.report import FIGURES, BadInputRow
from tests.reliability.sizes import SIZES

MAX_BATCH = 10_000  # gateway.max_batch_messages in config.yaml
PER_EXAMPLE = 100  # cases drawn per hypothesis example
EXAMPLES = math.ceil(SIZES.fuzz_cases / PER_EXAMPLE / len(STRATEGIES))


def answer(case: Case) -> str | None:
    """The code the gateway would nack ``case`` with (None: accepted); fails on anything else."""
    try:
        batch = decode_frame(case.frame, "msgpack", max_messages=MAX_BATCH)
    except ValidationError as exc:
        error = exc.to_dict()
    else:
        if not batch.errors:
            return None
        error = batch.errors[0].to_dict()
    assert error["code"] in ALL_CODES, f"{case.category}: unknown code {error['code']!r}"
    assert len(error["message"]) > 10 and " " in error["message"], error
    if case.codes:
        assert error["code"] in case.codes, (
            f"{case.category}: got {error['code']} ({error['message']}), expected {sorted(case.codes)}")
    return str(error["code"])


def record(category: str, codes: Counter[str], cases: int, note: str = "") -> None:
    rejected = sum(n for code, n in codes.items() if code != "accepted")
    FIGURES.bad_input.append(BadInputRow(category, "in-process decode + validate", cases, rejected,
                                         None, dict(codes), note))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("category", list(STRATEGIES))
def test_generated_bad_frames_get_a_clear_error(category: str) -> None:
    codes: Counter[str] = Counter()
    strategy = STRATEGIES[category]()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def run(cases: list[Case]) -> None:
        for case in cases:
            codes[answer(case) or "accepted"] += 1

    run()
    cases = sum(codes.values())
    record(category, codes, cases, "any value in a field: valid ones are accepted"
           if category == "wrong types" else "")
    # EXAMPLES x PER_EXAMPLE x 9 categories >= SIZES.fuzz_cases (100k in make test)
    assert cases >= EXAMPLES * PER_EXAMPLE * 0.9, f"hypothesis stopped early: {cases:,} cases"
    if category != "wrong types":
        assert codes["accepted"] == 0, f"{category}: {codes['accepted']} bad frames accepted"


def test_committed_corpus_gets_the_expected_codes() -> None:
    codes: Counter[str] = Counter()
    for case in corpus():
        codes[answer(case) or "accepted"] += 1
    record("committed corpus", codes, sum(codes.values()))
    assert codes["accepted"] == 0


"""``robostream offsets reset``: choosing one strategy, the plan table, dry run by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from robostream.cli import offsets_cmd
from robostream.config import Settings
from robostream.replay import OffsetChange, ResetPlan, ResetSpec, Strategy
from robostream.replay.offsets import parse_topic


def test_exactly_one_strategy() -> None:
    with pytest.raises(ValueError, match=r"exactly one .*got none"):
        offsets_cmd.spec_from(None, None, None, False, False, None)
    with pytest.raises(ValueError, match="got --shift-by, --to-earliest"):
        offsets_cmd.spec_from(None, None, -5, True, False, None)
    spec = offsets_cmd.spec_from("2024-06-10T12:00:00Z", None, None, False, False, None)
    assert spec == ResetSpec(Strategy.TO_DATETIME, time=datetime(2024, 6, 10, 12, tzinfo=UTC))
    assert offsets_cmd.spec_from(None, "PT10M", None, False, False, None).duration == timedelta(minutes=10)
    assert offsets_cmd.spec_from(None, None, None, False, False, 42).amount == 42
    assert offsets_cmd.spec_from(None, None, None, False, True, None).strategy is Strategy.TO_LATEST


def test_by_duration_looks_up_now_minus_the_duration() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    spec = ResetSpec(Strategy.BY_DURATION, duration=timedelta(hours=1))
    assert spec.target_time(now) == now - timedelta(hours=1)
    assert ResetSpec(Strategy.TO_EARLIEST).target_time(now) is None
    assert str(ResetSpec(Strategy.SHIFT_BY, amount=-5)) == "--shift-by -5"


def test_a_strategy_needs_its_value() -> None:
    with pytest.raises(ValueError, match="--to-datetime needs a value"):
        ResetSpec(Strategy.TO_DATETIME)


def test_topics_with_partitions_use_kafkas_syntax() -> None:
    assert parse_topic("robot.log") == ("robot.log", None)
    assert parse_topic("robot.log:2,0") == ("robot.log", [0, 2])
    with pytest.raises(ValueError):
        parse_topic("robot.log:a")


PLAN = ResetPlan("connect-mongo", "EMPTY", 0, ResetSpec(Strategy.TO_EARLIEST),
                 (OffsetChange("robot.log", 0, 120, 20), OffsetChange("robot.log", 1, None, 0)))


def test_the_plan_counts_what_will_be_read_again() -> None:
    assert PLAN.inactive and PLAN.rereads == 100
    assert [c.delta for c in PLAN.changes] == [-100, None]


def _root() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _main() -> None:
        pass

    root.add_typer(offsets_cmd.app, name="offsets")
    return root


def test_dry_run_is_the_default_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    executed: list[ResetPlan] = []
    monkeypatch.setattr("robostream.replay.plan_reset", lambda *a, **k: PLAN)
    monkeypatch.setattr("robostream.replay.execute_reset", lambda s, p: executed.append(p))
    result = CliRunner().invoke(_root(), ["offsets", "reset", "--group", "connect-mongo", "--to-earliest"])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing changed (100 record(s) would be read again)" in result.output
    assert "robot.log" in result.output and "-100" in result.output and executed == []
    argv = ["offsets", "reset", "-g", "connect-mongo", "--to-earliest", "--execute"]
    result = CliRunner().invoke(_root(), argv)
    assert result.exit_code == 0 and executed == [PLAN]
    assert "reset applied to 2 partition(s)" in result.output


def test_a_negative_shift_is_a_value_not_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ResetSpec] = []

    def fake_plan(settings: Settings, group: str, spec: ResetSpec, topics: list[str] | None) -> ResetPlan:
        seen.append(spec)
        return PLAN

    monkeypatch.setattr("robostream.replay.plan_reset", fake_plan)
    result = CliRunner().invoke(_root(), ["offsets", "reset", "-g", "g", "--shift-by", "-5"])
    assert result.exit_code == 0, result.output
    assert seen == [ResetSpec(Strategy.SHIFT_BY, amount=-5)]


def test_two_strategies_are_an_error() -> None:
    result = CliRunner().invoke(_root(), ["offsets", "reset", "-g", "g", "--to-earliest", "--to-latest"])
    assert result.exit_code == 2 and "choose exactly one" in result.output

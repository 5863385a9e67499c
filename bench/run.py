"""Run every benchmark and (re)write BENCHMARKS.md (what ``make bench`` calls).

Runs the scripts of ``bench/`` (``--only``/``--skip`` pick them; ``--repeat`` runs each several
times), each writing ``bench/results/<name>.json``; the runs of this invocation are also kept as
``bench/results/runs/<name>-<k>.json``. Then it collects the reports (the repeats where there are
some, else the last ``<name>.json``) and writes one table to ``BENCHMARKS.md``: each figure as the
median of the runs with its spread, beside the seed's target, our goal and the ceiling measured
in the same run, followed by ``bench/PROFILE.md`` (the profile-and-fix notes).

    python bench/run.py                              # everything, full size (~30 min on 2 cores)
    python bench/run.py --only e2e --repeat 3        # just the end-to-end cases, 3 runs
    python bench/run.py --only e2e --e2e-args="--small-duration 30"   # (note the =)
    python bench/run.py --report-only                # rewrite BENCHMARKS.md from bench/results
    python bench/run.py --quick --out /tmp/B.md      # tiny inputs (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import _common
from _common import BENCH, RESULTS, ROOT, markdown_table, median_spread

SCRIPTS = ("codec", "gateway", "processors", "fold", "sinks", "api", "replay", "e2e")
SEED_RATE = 138.5  # messages per robot and second at the seed's rates, media on (docs/simulator.md)
TELEMETRY_RATE = 132.5  # the same without the camera's 6 images/s on average
PROFILE_NOTES = BENCH / "PROFILE.md"
DEFAULT_OUT = ROOT / "BENCHMARKS.md"


@dataclass
class Figure:
    """One row of BENCHMARKS.md: a value per run, its unit, the seed's target and our goal."""

    area: str
    name: str
    values: list[float]
    unit: str
    seed: str = "-"
    goal: str = "-"
    ceiling: str = "-"
    digits: int = 0

    def measured(self) -> str:
        stat = median_spread(self.values)
        text = f"{stat['median']:,.{self.digits}f} {self.unit}".rstrip()
        if stat["n"] > 1:
            low, high = f"{stat['min']:,.{self.digits}f}", f"{stat['max']:,.{self.digits}f}"
            text += f" (+/-{stat['spread_pct'] / 2:.0f}%, {low}..{high})"
        return text

    def row(self) -> list[str]:
        return [self.area, self.name, self.measured(), self.seed, self.goal, self.ceiling]


# -- running ---------------------------------------------------------------------------------------


def run_script(name: str, quick: bool, extra: Sequence[str], out: Path) -> float:
    """Run ``bench/<name>.py`` once (output streamed); returns its wall seconds."""
    command = [sys.executable, str(BENCH / f"{name}.py"), "--out", str(out), *extra]
    if quick:
        command.append("--quick")
        if name == "processors":
            command.append("--no-kafka")
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.monotonic() - started


def run_all(names: Sequence[str], repeat: int, quick: bool, extra: dict[str, list[str]],
            results: Path) -> dict[str, float]:
    """Each script ``repeat`` times; the runs go to ``results/runs/``, the last to ``<name>.json``."""
    runs = results / "runs"
    walls = {}
    for name in names:
        runs.mkdir(parents=True, exist_ok=True)
        for old in runs.glob(f"{name}-*.json"):
            old.unlink()
        started = time.monotonic()
        for k in range(1, repeat + 1):
            out = runs / f"{name}-{k}.json"
            run_script(name, quick, extra.get(name, []), out)
            (results / f"{name}.json").write_text(out.read_text())
        walls[name] = time.monotonic() - started
    return walls


def load_reports(results: Path) -> dict[str, list[dict[str, Any]]]:
    """Per script, the reports of its latest runs (``runs/<name>-k.json``, else ``<name>.json``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SCRIPTS:
        repeats = sorted((results / "runs").glob(f"{name}-*.json"))
        files = repeats or [p for p in [results / f"{name}.json"] if p.exists()]
        if files:
            out[name] = [json.loads(p.read_text()) for p in files]
    return out


# -- figures per script ----------------------------------------------------------------------------


def each(reports: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> list[float]:
    values = []
    for report in reports:
        try:
            values.append(float(get(report["results"])))
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            continue
    return values


def _get(path: Sequence[str], results: dict[str, Any]) -> Any:
    for key in path:
        results = results[key]
    return results


def codec_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    return [Figure("codec", f"{dt}: validate + Avro encode (gateway ingest)",
                   each(reports, partial(_get, (dt, "records_per_s", "ingest"))), "envelopes/s")
            for dt in ("time_series", "time_series_packed", "images")]


def _gateway_workload(reports: list[dict[str, Any]], w: str) -> list[Figure]:
    rows = each(reports, lambda r: max(x["msgs_per_s"] for x in r[w]["gateway"]))
    direct = median_spread(each(reports, lambda r: r[w]["direct"]["msgs_per_s"]))["median"]
    ratio = median_spread(each(reports, lambda r: max(x["ratio"] for x in r[w]["gateway"])))["median"]
    return [
        Figure("gateway", f"{w}: best of 1/10/50 connections", rows, "msg/s", goal=">= 0.5x direct",
               ceiling=f"direct producer {direct:,.0f} msg/s -> {ratio:.2f}x"),
        Figure("gateway", f"{w}: ack p99, one batch at a time",
               each(reports, lambda r: r[w]["light_load"]["ack_p99_ms"]), "ms", digits=1),
        Figure("gateway", f"{w}: event-loop time per envelope (1 connection)",
               each(reports, lambda r: r[w]["gateway"][0]["loop_us_per_envelope"]), "us",
               ceiling="validate + encode + produce, measured inside the gateway"),
        Figure("gateway", f"{w}: longest event-loop hold by one frame, p99 (1 connection)",
               each(reports, lambda r: r[w]["gateway"][0]["loop_hold_p99_ms"]), "ms", digits=1,
               ceiling="ingest yields every 2 ms; histogram bucket bound"),
    ]


def gateway_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    workloads = ("time_series", "time_series_lists", "images")
    present = [w for w in workloads if any(w in r["results"] for r in reports)]
    return [f for w in present for f in _gateway_workload([r for r in reports if w in r["results"]], w)]


#: bench/processors.py telemetry scenarios: name -> what BENCHMARKS.md calls it
PROCESSOR_SCENARIOS = {
    "backlog": "backlog, 10-sample records", "live": "live-sized batches, 10-sample records",
    "backlog_100": "backlog, 100-sample records", "live_100": "live-sized batches, 100-sample records",
}


def _scenario(key: str, *path: str) -> Callable[[dict[str, Any]], float]:
    return lambda r: float(_get(("telemetry", key, *path), r))


def processors_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    core = median_spread(each(reports, lambda r: r["core"]["messages_per_s"]))["median"]
    worker = each(reports, lambda r: r["worker"]["messages_per_s"])
    out = [Figure("processors", "Faust worker, telemetry", worker, "rec/s",
                  goal=">= 20,000 rec/s per worker", ceiling=f"processing core alone {core:,.0f} rec/s")]
    for key, name in PROCESSOR_SCENARIOS.items():
        rate = each(reports, _scenario(key, "messages_per_s"))
        if not rate:
            continue
        ceiling = median_spread(each(reports, _scenario(key, "ceiling", "messages_per_s")))["median"]
        ratio = median_spread(each(reports, _scenario(key, "ratio_to_ceiling")))["median"]
        out.append(Figure("processors", f"Faust worker, {name}", rate, "rec/s",
                          goal=">= 0.5x do-nothing agent",
                          ceiling=f"do-nothing stream.take() agent {ceiling:,.0f} rec/s -> {ratio:.2f}x"))
        out.append(Figure("processors", f"Faust worker, {name}: samples",
                          each(reports, _scenario(key, "samples_per_s")), "samples/s",
                          goal=">= 100,000 samples/s per worker"))
    return out


def fold_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    out = []
    for case in reports[-1]["results"]:
        before = median_spread(each(reports, partial(_get, (case, "before_us", "median"))))["median"]
        speedups = each(reports, partial(_get, (case, "speedup", "median")))
        out.append(Figure("processors fix", f"window fold, {case}: after (before {before:,.0f} us)",
                          each(reports, partial(_get, (case, "after_us", "median"))), "us/call",
                          ceiling="speedup " + ", ".join(f"{v:.2f}x" for v in speedups)))
    return out


def sinks_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    out = []
    steady = "steady_records_per_s"
    for sink, unit, key in (("mongo", "rec/s", steady), ("redis", "rec/s", steady),
                            ("s3", "MB/s", "mb_per_s")):
        ceiling_key = "mb_per_s" if sink == "s3" else "records_per_s"
        values = each(reports, partial(_get, ("sinks", sink, key)))
        ceiling = median_spread(each(reports, partial(_get, ("ceilings", sink, ceiling_key))))["median"]
        what = reports[-1]["results"]["ceilings"].get(sink, {}).get("what", "bare client")
        ratio = median_spread(values)["median"] / ceiling if ceiling else float("nan")
        out.append(Figure("sinks", f"{sink} sink, one task", values, unit, goal=">= 0.5x bare client",
                          ceiling=f"{what} {ceiling:,.1f} {unit} -> {ratio:.2f}x",
                          digits=1 if sink == "s3" else 0))
    return out


def api_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    def ms(group: str, case: str, key: str = "p50_ms") -> list[float]:
        return each(reports, lambda r: r[group][case][key])

    agg_1h, cold = "1h windows (MongoDB fallback)", "cold frame (MongoDB + presign) + image"
    recent = "recent frame (Redis) + image"
    def read(case: str) -> str:
        last = reports[-1]["results"]["range"].get(case, {})
        if "documents" not in last:
            return ""
        return (f"{last['documents']} documents, {last['bytes'] / 1e6:.2f} MB sent; bare pymongo read "
                f"of them {last['bare_ms']} ms")

    def history(label: str, case: str, seed: str, goal: str) -> Figure:
        return Figure("api", label, ms("range", case), "ms", seed, goal, ceiling=read(case) or "-", digits=1)

    return [
        history("1 h of 100 Hz, every point, pose, columns (p50)", "whole range, pose, columns",
                "< 1,000 ms", "< 250 ms"),
        history("1 h, every point, every channel, columns (p50)", "whole range, every channel, columns",
                "< 1,000 ms", "< 1,000 ms"),
        history("1 h, every point, every channel, NDJSON (p50)", "whole range, every channel, ndjson",
                "< 1,000 ms", "-"),
        history("1 h, max_points=4000, columns (p50)", "whole range, max_points=4000, columns",
                "< 200 ms", "< 50 ms"),
        history("1 h, max_points=1000, NDJSON (p50)", "whole range, max_points=1000", "< 200 ms", "< 50 ms"),
        history("24 h, max_points=4000, columns (p50)", "24 h, max_points=4000, columns", "< 200 ms",
                "< 50 ms"),
        history("24 h, max_points=4000, NDJSON (p50)", "24 h, max_points=4000, ndjson", "< 200 ms",
                "< 50 ms"),
        Figure("api", "aggregations 1m, Redis (p99)", ms("aggregations", "1m windows (Redis)", "p99_ms"),
               "ms", "< 200 ms", "< 10 ms", digits=1),
        Figure("api", "aggregations 1h, MongoDB (p99)", ms("aggregations", agg_1h, "p99_ms"), "ms",
               "< 200 ms", "< 10 ms", digits=1),
        Figure("api", "recent frame + image (p99)", ms("frames", recent, "p99_ms"), "ms", "< 500 ms",
               digits=1),
        Figure("api", "cold frame + image (p99)", ms("frames", cold, "p99_ms"), "ms", "< 2,000 ms", digits=1),
        Figure("api", "live, sink write -> WS client (p99)", each(reports, lambda r: r["live"]["p99_ms"]),
               "ms", "< 100 ms", "p99 < 25 ms", digits=1),
    ]


def _case_key(case: dict[str, Any]) -> str:
    plural = "s" if case["robots"] > 1 else ""
    return f"{case['robots']} robot{plural}, {'media' if case['media'] else 'telemetry'}"


def _quantiles(stat: dict[str, Any]) -> str:
    return " / ".join(f"{stat.get(k, float('nan')):.0f}" for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))


def live_detail(live: dict[str, Any]) -> str:
    """The live figure's detail: p50 / p99 / p99.9 / max of the whole path and of each hop (every
    sample since the per-sample bench; older reports timed each message's newest sample)."""
    what = f"{live['n']:,} samples" if "samples" in live else f"{live['n']:,} msgs (newest sample)"
    text = f"p50 / p99 / p99.9 / max {_quantiles(live)} ms, {what}"
    hops = (("robot_to_kafka", "robot -> Kafka"), ("kafka_to_publish", "Kafka -> Redis publish"),
            ("publish_to_client", "publish -> WS client"), ("kafka_to_client", "Kafka -> WS client"))
    parts = [f"{label} {_quantiles(live[key])}" for key, label in hops if live.get(key, {}).get("n")]
    return text + ("; of which " + ", ".join(parts) + " ms" if parts else "")


def e2e_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    out: list[Figure] = []
    if "floor" in reports[-1]["results"]:
        floor = reports[-1]["results"]["floor"]
        out.append(Figure("e2e floor", "live floor: raw Kafka -> Redis PUBLISH -> aiohttp WS p50 / p99 / "
                          "p99.9 / max", each(reports, lambda r: r["floor"]["p99_ms"]), "ms (p99)",
                          ceiling=f"p50 / p99 / p99.9 / max {_quantiles(floor)} ms, {floor['n']:,} records "
                                  f"at {floor['rate_per_s']:.0f}/s, no robostream code on the path",
                          digits=1))
    keys = [_case_key(c) for c in reports[-1]["results"]["cases"]]
    for key in keys:
        def val(get: Callable[[dict[str, Any]], float], key: str = key) -> list[float]:
            return each(reports, lambda r: get(next(c for c in r["cases"] if _case_key(c) == key)))

        last = next(c for c in reports[-1]["results"]["cases"] if _case_key(c) == key)
        robots, ceil = last["robots"], last["ceilings"]
        produce = ceil["kafka_produce"]["records_per_s"]
        area = f"e2e {key} ({last['duration_s']:.0f} s)"
        mongo_lag = sum(n for g, n in last["lag_after_drain"].items() if g.endswith("-mongo"))
        out += [
            Figure(area, "sustained messages/s (acked)", val(lambda c: c["msgs_per_s"]), "msg/s",
                   f"{robots * (SEED_RATE if last['media'] else TELEMETRY_RATE):,.0f} msg/s offered",
                   "keep up, lag drains",
                   f"records {last['records_per_s']:,.0f}/s vs confluent-kafka produce {produce:,.0f}/s "
                   f"-> {last['records_per_s'] / produce:.3f}x of the ceiling used"),
            Figure(area, "MB/s (acked)", val(lambda c: c["mb_per_s"]), "MB/s", digits=2,
                   ceiling=f"consume ceiling {ceil['kafka_consume']['mb_per_s']:.0f} MB/s"),
            Figure(area, "consumer lag when the robots stop (all groups)",
                   val(lambda c: sum(c["lag_at_end"].values())), "records",
                   ceiling=(f"drained in {last['drain_s']:.1f} s" if not sum(last["lag_after_drain"].values())
                            else f"{sum(last['lag_after_drain'].values()):,} left after the "
                                 f"{last['drain_s']:.0f} s drain wait")),
            Figure(area, "lost (acked, not in Kafka / MongoDB)", val(lambda c: c["lost"]), "", "0", "0",
                   f"{last.get('pending_mongo', 0):,} records not yet in MongoDB when the drain wait ended "
                   f"(MongoDB sink lag {mongo_lag:,}, uncommitted: redelivered, not lost)"
                   if last.get("pending_mongo") else "-"),
            Figure(area, "live robot -> API WS client p50 / p99 / p99.9 / max",
                   val(lambda c: c["live"]["p99_ms"]), "ms (p99)", "< 100 ms",
                   "p99 < 50 ms" if last["robots"] <= 3 else "p99 < 100 ms",
                   live_detail(last["live"])),
            Figure(area, "CPU % of one core: gateway / sinks / processors / api / simulator",
                   val(lambda c: sum(c["cpu_percent"][n] for n in ("gateway", "sinks", "processors", "api"))),
                   "% (services)", ceiling=" / ".join(f"{last['cpu_percent'][n]:.0f}" for n in
                                                    ("gateway", "sinks", "processors", "api", "simulator"))),
            Figure(area, "peak RSS MB: gateway / sinks / processors / api",
                   val(lambda c: sum(c["peak_rss_mb"][n] for n in ("gateway", "sinks", "processors", "api"))),
                   "MB (sum)", ceiling=" / ".join(f"{last['peak_rss_mb'][n]:.0f}" for n in
                                                 ("gateway", "sinks", "processors", "api"))),
            Figure(area, "MongoDB: bare insert_many of the sink's documents",
                   val(lambda c: c["ceilings"]["mongo_insert_many"]["docs_per_s"]), "docs/s",
                   ceiling=f"sink wrote {last['telemetry_records_in_mongo'] / last['duration_s']:,.0f} "
                           "records/s (offered load)"),
        ]
        if "s3_put" in ceil:
            out.append(Figure(area, "S3: bare boto3 put of the same frames",
                              val(lambda c: c["ceilings"]["s3_put"]["mb_per_s"]), "MB/s", digits=1,
                              ceiling=f"{ceil['s3_put']['objects']} objects"))
    return out


def replay_figures(reports: list[dict[str, Any]]) -> list[Figure]:
    recorded = reports[-1]["parameters"]["seconds"]
    return [
        Figure("replay", f"paced at 10x ({recorded:g} s recorded): wall / recorded span",
               each(reports, partial(_get, ("10x", "ratio"))), "", goal="0.1 (1/speed)", digits=4),
        Figure("replay", "paced at 10x: last record late by",
               each(reports, partial(_get, ("10x", "overshoot_ms"))), "ms", digits=1),
        Figure("replay", "at max speed", each(reports, partial(_get, ("max", "records_per_s"))), "rec/s"),
    ]


EXTRACTORS: dict[str, Callable[[list[dict[str, Any]]], list[Figure]]] = {
    "codec": codec_figures, "gateway": gateway_figures, "processors": processors_figures,
    "fold": fold_figures,
    "sinks": sinks_figures, "api": api_figures, "replay": replay_figures, "e2e": e2e_figures,
}


# -- BENCHMARKS.md ---------------------------------------------------------------------------------


def figures_of(reports: dict[str, list[dict[str, Any]]]) -> list[Figure]:
    out: list[Figure] = []
    for name, extract in EXTRACTORS.items():
        if name in reports:
            try:
                out += extract(reports[name])
            except (KeyError, IndexError, TypeError, StopIteration) as exc:
                print(f"warning: {name}: cannot read its report ({type(exc).__name__}: {exc})")
    return out


def provenance(reports: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for name, runs in reports.items():
        last = runs[-1]
        quick = " (quick)" if last.get("parameters", {}).get("quick") else ""
        machine = last.get("machine", {})
        load = machine.get("load_avg") or machine.get("load_avg_at_start") or []
        rows.append([name, str(len(runs)), f"{last.get('created', '?')}{quick}",
                     " ".join(f"{x:.1f}" for x in load) or "?"])
    return markdown_table(["script", "runs", "last run (UTC)", "load average (1/5/15 min) then"], rows)


def markdown(reports: dict[str, list[dict[str, Any]]], notes: str = "", note: str = "") -> str:
    figures = figures_of(reports)
    machine = _common.machine()
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    table = markdown_table(["area", "figure", "measured (median +/-half-spread, min..max)", "seed target",
                            "our goal", "ceiling in the same run / detail"], [f.row() for f in figures])
    header = f"""# robostream benchmarks

Written by `make bench` (`bench/run.py`) from `bench/results/*.json` on {now} UTC.
Machine: {machine['platform']}, {machine['cpu_count']} cores, {machine['memory_gb']} GB,
Python {machine['python']}.
**The machine was shared** with other engineers running test suites: timings are noisy. Each
figure is the median of the runs listed below; with several runs the spread is shown as +/- half
the (max - min) range relative to the median, and min..max. Ceilings (bare confluent-kafka,
pymongo, boto3) were measured in the same run on the same data. SecantusDB stands in for MongoDB
and SeaweedFS for S3 (the local embedded stack).

"""
    return (header + table + "\n\n## Runs\n\n" + (note.strip() + "\n\n" if note.strip() else "")
            + provenance(reports) + "\n\n"
            + "Details (every figure, parameters, versions) are in `bench/results/<script>.json`.\n"
            + ("\n" + notes.strip() + "\n" if notes.strip() else ""))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these scripts")
    parser.add_argument("--skip", nargs="+", choices=SCRIPTS, default=[], help="do not run these")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each script (median and spread)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs (smoke test)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite BENCHMARKS.md")
    parser.add_argument("--e2e-args", default="", help="extra arguments of bench/e2e.py ('--duration 30')")
    parser.add_argument("--note", default="", help="a sentence about this run (what was shortened, ...)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON reports")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the markdown file to write")
    return parser.parse_args(argv)


def run(argv: Sequence[str] | None = None) -> str:
    """Run the benchmarks (unless --report-only) and write the markdown; returns it."""
    args = parse(argv)
    if not args.report_only:
        names = [n for n in (args.only or SCRIPTS) if n not in args.skip]
        walls = run_all(names, args.repeat, args.quick, {"e2e": args.e2e_args.split()}, args.results)
        print("\n" + "\n".join(f"{n}: {w:.0f} s" for n, w in walls.items()))
    notes = PROFILE_NOTES.read_text() if PROFILE_NOTES.exists() else ""
    text = markdown(load_reports(args.results), notes, args.note)
    args.out.write_text(text)
    print(f"written: {args.out}")
    return text


if __name__ == "__main__":
    run()

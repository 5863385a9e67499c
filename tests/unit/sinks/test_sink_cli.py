"""`robostream sink` as a user meets it (the group is wired into `robostream` by the lead)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robostream.cli.sink_cmd import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("command", [[], ["run"], ["status"], ["pause"], ["resume"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_unknown_connector_is_named_with_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
    result = runner.invoke(app, ["run", "--connector", "elastic"])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "unknown connector(s) elastic" in said and "declares mongo, s3, redis, redis-frames" in said


def test_status_without_a_worker_says_so() -> None:
    result = runner.invoke(app, ["status", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "no sink worker answers" in result.output


def test_connectors_from_the_environment_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
    monkeypatch.setenv("ROBOSTREAM_CONNECTORS", json.dumps([{"name": "only", "kind": "redis",
                                                             "topics": ["time_series"]}]))
    result = runner.invoke(app, ["run", "--connector", "mongo"])
    assert result.exit_code == 2 and "declares only" in result.output


def test_run_takes_a_role_or_connectors_not_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
    result = runner.invoke(app, ["run", "--connector", "mongo", "--role", "live"])
    assert result.exit_code == 2 and "either --connector or --role" in result.output


class _Worker:
    """A sink worker's REST API answering for ``connectors`` (records the PUTs it gets)."""

    def __init__(self, connectors: list[str]) -> None:
        import http.server
        import threading

        self.puts: list[str] = []
        worker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                running = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}
                expanded = {n: {"status": running} for n in connectors}
                self._answer(200, json.dumps(expanded if "expand" in self.path else connectors).encode())

            def do_PUT(self) -> None:
                worker.puts.append(self.path)
                self._answer(202, b"")

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_status_and_pause_find_the_store_and_the_live_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    store, live = _Worker(["mongo", "s3"]), _Worker(["redis"])
    try:
        monkeypatch.setenv("ROBOSTREAM_CONFIG", str(ROOT / "config.yaml"))
        monkeypatch.setenv("ROBOSTREAM_SINKS__PORT", str(store.port))
        monkeypatch.setenv("ROBOSTREAM_SINKS__LIVE_PORT", str(live.port))
        result = runner.invoke(app, ["status"])
        assert result.exit_code == 0, result.output
        assert all(name in result.output for name in ("mongo", "s3", "redis"))
        assert runner.invoke(app, ["pause", "redis"]).exit_code == 0
        assert runner.invoke(app, ["resume", "mongo"]).exit_code == 0
        assert (live.puts, store.puts) == (["/connectors/redis/pause"], ["/connectors/mongo/resume"])
        missing = runner.invoke(app, ["pause", "elastic"])
        assert missing.exit_code == 2 and "runs connector 'elastic'" in missing.output
    finally:
        store.server.shutdown()
        live.server.shutdown()

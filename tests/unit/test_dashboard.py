"""The Grafana dashboard (deploy/grafana/robostream.json) and the Prometheus scrape config
(deploy/prometheus/prometheus.yml) use only metrics the services export, and scrape every service."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from robostream.api.metrics import ApiMetrics
from robostream.gateway.metrics import GatewayMetrics
from robostream.processors.metrics import MetricsServer
from robostream.processors.throughput import Throughput
from robostream.schemas.registry.metrics import RegistryMetrics
from robostream.schemas.registry.state import RegistryState
from robostream.sinks.metrics import sink_registry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "robostream.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRIC = re.compile(r"\brobostream_[a-z0-9_]+")
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can export (counters as ``_total``, histograms' parts ...)."""
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES}


def every_service() -> dict[str, set[str]]:
    return {
        "gateway": exported(GatewayMetrics().registry),
        "api": exported(ApiMetrics(lambda: None).registry),
        "schema-registry": exported(RegistryMetrics(RegistryState()).registry),
        "sinks": exported(sink_registry({})),
        "sinks-live": exported(sink_registry({})),
        "processors": exported(MetricsServer(Throughput("worker-1"), "app", "127.0.0.1", 0).registry),
    }


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_every_metric_of_the_dashboard_is_exported_by_a_service() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    services = every_service()
    known = set().union(*services.values())
    assert not sorted(used - known), f"the dashboard uses metrics no service exports: {sorted(used - known)}"
    for service, names in services.items():  # a panel (at least) for every service
        assert used & names, f"no panel shows {service}"


def test_the_check_is_live() -> None:
    """A misspelt metric name is caught: the known names are not everything."""
    known = set().union(*every_service().values())
    assert "robostream_sinks_records_written_total" in known
    assert "robostream_sinks_record_written_total" not in known


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == uid for p in panels)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    targets: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets[job["job_name"]] = static["targets"][0]
        for dns in job.get("dns_sd_configs", []):
            targets[job["job_name"]] = f"{dns['names'][0]}:{dns['port']}"
    assert set(targets) == set(every_service())
    processors = compose["processors"]["environment"]
    ports = {"gateway": compose["gateway"]["environment"]["ROBOSTREAM_GATEWAY__PORT"],
             "api": compose["api"]["environment"]["ROBOSTREAM_API__PORT"],
             "schema-registry": compose["schema-registry"]["command"][-1],
             "sinks": compose["sinks"]["environment"]["ROBOSTREAM_SINKS__PORT"],
             "sinks-live": compose["sinks-live"]["environment"]["ROBOSTREAM_SINKS__LIVE_PORT"],
             "processors": processors["ROBOSTREAM_PROCESSORS__METRICS_PORT"]}
    assert targets == {name: f"{name}:{port}" for name, port in ports.items()}
    assert processors["ROBOSTREAM_PROCESSORS__METRICS_HOST"] == "0.0.0.0"


def test_the_monitoring_profile_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = [v.split(":")[0] for name in ("prometheus", "grafana") for v in compose[name]["volumes"]
              if v.startswith("./")]
    assert "./deploy/grafana/robostream.json" in mounts and "./deploy/prometheus/prometheus.yml" in mounts
    assert all((ROOT / m).exists() for m in mounts), mounts
    assert all(compose[name]["profiles"] == ["monitoring"] for name in ("prometheus", "grafana"))

"""Scrape a service's ``GET /metrics`` and read its samples (Prometheus text format)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: ``value(name, **labels)`` sums the samples of ``name`` matching ``labels``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert found, f"no sample {name}{labels or ''} in the scrape"
        return sum(found)

    def get(self, name: str, **labels: str) -> float:
        """Like :meth:`value`, 0 when no sample matches (a labelled series not created yet)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def labels(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


def scrape(url: str, timeout: float = 5.0) -> Scrape:
    """``GET <url>`` (a ``/metrics`` URL): asserts 200 and the Prometheus text content type."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(response.read().decode())

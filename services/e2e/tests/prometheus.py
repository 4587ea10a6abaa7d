"""Reading Prometheus' text format, just enough for the suite's checks."""

from __future__ import annotations

import re

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    parsed = []
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found and not line.startswith("#"):
            labels = dict(LABEL.findall(found["labels"] or ""))
            parsed.append((found["name"], labels, float(found["value"])))
    return parsed


def requests_counted(text: str, route: str, method: str, status: int) -> float:
    """The count for a route template; ``{}`` stands for a path parameter of any name."""
    template = re.compile(re.escape(route).replace(r"\{\}", r"\{\w+\}"))
    return sum(
        value
        for name, labels, value in samples(text)
        if name == "classifier_requests_total"
        and template.fullmatch(labels.get("route", ""))
        and labels.get("method") == method
        and labels.get("status") == str(status)
    )

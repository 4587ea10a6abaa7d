"""The ethogram: one row per behaviour with its bouts as bars over time, the top probability
beneath, drawn with matplotlib's Agg backend (no display needed) into PNG bytes.

Colours come from viridis, whose lightness rises steadily, so the rows stay apart when printed
in greyscale; every row is labelled too, so colour is never the only cue.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: never a display, whatever the environment says

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MultipleLocator

from classifier.recordings.analysis import Provenance, RecordingAnalysis

# Tick spacings in seconds, so that a clip of seconds and a recording of hours both get 6-12.
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
# The probability strip is averaged into at most this many columns (about one per pixel).
_STRIP_COLUMNS = 1600


def label_colours(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` colours of clearly different lightness (dark purple to light yellow)."""
    palette = colormaps["viridis"]
    if count == 1:
        return [palette(0.5)]
    # Up to 0.82: the palette's last yellows are too light for a thin bar on white.
    return [palette(0.82 * k / (count - 1)) for k in range(count)]


def minutes_seconds(seconds: float, _position: object = None) -> str:
    """An axis label as minutes:seconds (minutes go past 59 for long recordings)."""
    whole = round(seconds)
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def _tick_step(duration_s: float) -> float:
    for step in _TICK_STEPS:
        if duration_s / step <= 12:
            return float(step)
    return float(_TICK_STEPS[-1])


def _strip(top: np.ndarray, starts: np.ndarray, end: float) -> tuple[np.ndarray, ...]:
    """Column times, mean and minimum of the top probability, at most _STRIP_COLUMNS wide."""
    if len(top) <= _STRIP_COLUMNS:
        edges = np.append(starts, end)
        return edges, np.append(top, top[-1]), np.append(top, top[-1])
    groups = np.array_split(np.arange(len(top)), _STRIP_COLUMNS)
    edges = np.array([starts[group[0]] for group in groups] + [end])
    means = np.array([top[group].mean() for group in groups])
    lows = np.array([top[group].min() for group in groups])
    return edges, np.append(means, means[-1]), np.append(lows, lows[-1])


def footer_line(analysis: RecordingAnalysis, provenance: Provenance) -> str:
    parameters = analysis.parameters
    threshold = parameters.min_bout_ms
    if isinstance(threshold, dict):
        smoothing = json.dumps(threshold, sort_keys=True)
    else:
        smoothing = f"{threshold:g} ms" if threshold else "off"
    return (
        f"model {provenance.model_name} {provenance.model_version} "
        f"(sha256 {provenance.model_sha256[:12]})  |  input sha256 "
        f"{provenance.input_sha256[:12]}  |  stride {parameters.stride}, min_bout_ms "
        f"{smoothing}  |  service {provenance.service_version}, {provenance.created_at}"
    )


def render_ethogram(analysis: RecordingAnalysis, provenance: Provenance) -> bytes:
    """The PNG bytes of the recording's ethogram; its text chunks carry the provenance."""
    labels: Sequence[str] = analysis.labels
    colours = label_colours(len(labels))
    duration = max(analysis.duration_s, 1e-6)
    rows = len(labels)
    figure = Figure(figsize=(14, 2.1 + 0.42 * rows), dpi=100, layout="constrained")
    height = figure.get_figheight()
    # Leave the bottom quarter inch to the footer line, outside the laid-out axes.
    figure.get_layout_engine().set(rect=(0, 0.25 / height, 1, 1 - 0.25 / height))  # type: ignore[union-attr, call-arg]
    grid = figure.add_gridspec(2, 1, height_ratios=[rows * 0.42, 0.8])
    bars = figure.add_subplot(grid[0])
    strip = figure.add_subplot(grid[1], sharex=bars)

    # A bout narrower than a pixel column would be drawn faint (anti-aliased) or not at all in
    # an hour-long recording; it is widened to one column, so that every bout shows.
    narrowest = duration / _STRIP_COLUMNS
    by_label: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for bout in analysis.bouts:
        by_label[bout.label].append((bout.start_s, max(bout.duration_s, narrowest)))
    for row, label in enumerate(labels):
        y = rows - 1 - row  # the first label on top
        bars.broken_barh(
            by_label[label],
            (y - 0.38, 0.76),
            facecolors=colours[row],
            linewidth=0,
        )
    bars.set_yticks(range(rows), list(reversed(labels)))
    bars.set_ylim(-0.6, rows - 0.4)
    bars.set_xlim(0, duration)
    bars.grid(axis="x", color="0.85", linewidth=0.6)
    bars.set_axisbelow(True)
    bars.tick_params(axis="x", labelbottom=False)
    recording = analysis.recording
    bars.set_title(
        f"{recording.filename}: {analysis.frames} frames, {minutes_seconds(duration)} "
        f"(m:ss), {len(analysis.bouts)} bouts",
        loc="left",
        fontsize=11,
    )
    bars.legend(
        handles=[
            Patch(facecolor=colours[k], edgecolor="0.3", label=label)
            for k, label in enumerate(labels)
        ],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=min(len(labels), 8),
        fontsize=8,
        frameon=False,
        handlelength=1.2,
    )

    top = analysis.probabilities.max(axis=1).astype(np.float64)
    edges, means, lows = _strip(top, analysis.times.starts, duration)
    strip.fill_between(edges, 0, means, step="post", color="0.55", linewidth=0)
    strip.step(edges, lows, where="post", color="0.1", linewidth=0.5)
    strip.set_ylim(0, 1)
    strip.set_yticks([0, 0.5, 1])
    strip.set_ylabel("top p", fontsize=9)
    strip.grid(axis="x", color="0.85", linewidth=0.6)
    strip.set_axisbelow(True)
    step = _tick_step(duration)
    strip.xaxis.set_major_locator(MultipleLocator(step))
    strip.xaxis.set_major_formatter(FuncFormatter(minutes_seconds))
    strip.set_xlabel(
        "time (minutes:seconds); strip: highest label probability, grey the mean and black the "
        "lowest within each column",
        fontsize=9,
    )
    figure.text(0.005, 0.003, footer_line(analysis, provenance), fontsize=7, color="0.35")

    buffer = io.BytesIO()
    figure.savefig(
        buffer,
        format="png",
        metadata={
            "Title": f"Ethogram of {recording.filename}",
            "Software": f"image-sequence-classifier {provenance.service_version}",
            "Source": f"{provenance.model_name} {provenance.model_version}",
            "Description": json.dumps(provenance.to_dict(), sort_keys=True),
        },
    )
    return buffer.getvalue()

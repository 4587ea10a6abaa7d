"""Per-frame labels to bouts: ``min_bout_ms`` smoothing, bouts, time budget, transitions, bins.

Time is measured by the frames' own start times: frame ``i`` lasts until frame ``i + 1`` starts,
and the last frame until the end of the recording, so bouts tile the recording exactly and the
time budget adds up to its duration.

Smoothing follows DeepEthogram's and SimBA's post-processing, in two steps, each with the
threshold of one label (``min_bout_ms`` may give one per label):

1. Fill gaps: a stretch shorter than label X's threshold between two bouts of X becomes X
   (scanning from the start of the recording; a filled bout may go on to fill the next gap).
2. Drop short bouts: a bout shorter than its label's threshold is merged into the longer of
   its neighbours (the earlier one on a tie; the first and last bouts into their only
   neighbour), shortest bouts first, until no bout is shorter than its threshold or one bout
   is left.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
TimeArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FrameTimes:
    """When each frame starts, and when the recording ends (the end of the last frame)."""

    starts: TimeArray
    duration_s: float

    @classmethod
    def regular(cls, frames: int, fps: float) -> FrameTimes:
        return cls(np.arange(frames, dtype=np.float64) / fps, frames / fps)

    def start_of(self, frame: int) -> float:
        return float(self.starts[frame])

    def end_of(self, frame: int) -> float:
        """The end of ``frame``: the start of the next one, or the end of the recording."""
        if frame + 1 < len(self.starts):
            return float(self.starts[frame + 1])
        return self.duration_s

    def span(self, first: int, last: int) -> float:
        """Seconds from the start of ``first`` to the end of ``last`` (inclusive)."""
        return self.end_of(last) - self.start_of(first)


@dataclass(frozen=True, slots=True)
class Bout:
    """A maximal run of one label: frames ``start_frame``..``end_frame`` inclusive."""

    label: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    mean_confidence: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class LabelBudget:
    """One label's share of the recording."""

    label: str
    bouts: int
    frames: int
    total_s: float
    percent: float
    mean_bout_s: float
    median_bout_s: float
    first_onset_s: float | None


@dataclass(frozen=True, slots=True)
class BinBudget:
    """One label's share of one time bin ``[start_s, end_s)``; the last bin may be shorter."""

    bin: int
    start_s: float
    end_s: float
    label: str
    bouts: int  # bouts that start in this bin
    frames: int  # frames that start in this bin
    total_s: float  # seconds of the label inside this bin
    percent: float  # of the bin's length


def runs(labels: IntArray) -> list[tuple[int, int, int]]:
    """(label, first frame, last frame) of every maximal run of equal labels."""
    if len(labels) == 0:
        return []
    changes = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes - 1, [len(labels) - 1]))
    return [
        (int(labels[s]), int(s), int(e))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def smooth(labels: IntArray, times: FrameTimes, min_bout_s: Sequence[float]) -> IntArray:
    """Labels after gap filling and short-bout removal (module docstring); ``min_bout_s[k]`` is
    label k's threshold in seconds (0: label k is never smoothed)."""
    if len(labels) == 0 or not any(value > 0 for value in min_bout_s):
        return labels.copy()
    filled = _fill_gaps(runs(labels), times, min_bout_s)
    kept = _drop_short(filled, times, min_bout_s)
    result = np.empty_like(labels)
    for label, first, last in kept:
        result[first : last + 1] = label
    return result


def _fill_gaps(
    spans: list[tuple[int, int, int]], times: FrameTimes, min_bout_s: Sequence[float]
) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    index = 0
    while index < len(spans):
        label, first, last = spans[index]
        threshold = min_bout_s[label]
        following = index + 1
        while threshold > 0 and following < len(spans):
            # Look for the next bout of this label no further than the threshold away.
            probe = following
            while probe < len(spans) and spans[probe][0] != label:
                if times.span(last + 1, spans[probe][2]) >= threshold:
                    break
                probe += 1
            if probe < len(spans) and spans[probe][0] == label and probe > following:
                last = spans[probe][2]
                following = probe + 1
            else:
                break
        out.append((label, first, last))
        index = following
    return out


def _drop_short(
    spans: list[tuple[int, int, int]], times: FrameTimes, min_bout_s: Sequence[float]
) -> list[tuple[int, int, int]]:
    # A doubly linked list of bouts, and a heap of the short ones keyed by (duration, start).
    labels = [span[0] for span in spans]
    firsts = [span[1] for span in spans]
    lasts = [span[2] for span in spans]
    prev = list(range(-1, len(spans) - 1))
    nxt = [*range(1, len(spans)), -1]
    alive = [True] * len(spans)
    count = len(spans)

    def duration(node: int) -> float:
        return times.span(firsts[node], lasts[node])

    heap = [
        (duration(node), firsts[node], node)
        for node in range(len(spans))
        if duration(node) < min_bout_s[labels[node]]
    ]
    heapq.heapify(heap)

    def absorb(keeper: int, other: int) -> None:
        """Merge ``other`` (a neighbour) into ``keeper``."""
        nonlocal count
        firsts[keeper] = min(firsts[keeper], firsts[other])
        lasts[keeper] = max(lasts[keeper], lasts[other])
        alive[other] = False
        count -= 1
        before, after = prev[other], nxt[other]
        if before >= 0:
            nxt[before] = after
        if after >= 0:
            prev[after] = before

    while heap and count > 1:
        length, first, node = heapq.heappop(heap)
        if not alive[node] or first != firsts[node] or length != duration(node):
            continue  # stale entry: the bout has since grown or gone
        if length >= min_bout_s[labels[node]]:
            continue
        before, after = prev[node], nxt[node]
        if before < 0:
            keeper = after
        elif after < 0:
            keeper = before
        else:
            keeper = before if duration(before) >= duration(after) else after
        absorb(keeper, node)
        # Bouts of the keeper's label on both sides of the removed one become one bout.
        for neighbour in (prev[keeper], nxt[keeper]):
            if neighbour >= 0 and labels[neighbour] == labels[keeper]:
                absorb(keeper, neighbour)
        grown = duration(keeper)
        if grown < min_bout_s[labels[keeper]]:
            heapq.heappush(heap, (grown, firsts[keeper], keeper))
    return [(labels[n], firsts[n], lasts[n]) for n in range(len(spans)) if alive[n]]


def bouts_of(
    labels: IntArray,
    names: Sequence[str],
    times: FrameTimes,
    probabilities: npt.NDArray[np.float32],
) -> list[Bout]:
    """The bouts of per-frame label indices; mean confidence is the mean probability of the
    bout's label over its frames."""
    bouts = []
    for label, first, last in runs(labels):
        confidence = float(probabilities[first : last + 1, label].mean())
        bouts.append(
            Bout(names[label], first, last, times.start_of(first), times.end_of(last), confidence)
        )
    return bouts


def time_budget(
    bouts: Sequence[Bout], names: Sequence[str], duration_s: float
) -> list[LabelBudget]:
    """Every label a row (zeros included), in the model's label order."""
    rows = []
    for name in names:
        own = [bout for bout in bouts if bout.label == name]
        lengths = [bout.duration_s for bout in own]
        total = float(sum(lengths))
        rows.append(
            LabelBudget(
                label=name,
                bouts=len(own),
                frames=sum(bout.frames for bout in own),
                total_s=total,
                percent=100.0 * total / duration_s if duration_s > 0 else 0.0,
                mean_bout_s=statistics.fmean(lengths) if lengths else 0.0,
                median_bout_s=float(statistics.median(lengths)) if lengths else 0.0,
                first_onset_s=own[0].start_s if own else None,
            )
        )
    return rows


def transitions(bouts: Sequence[Bout], names: Sequence[str]) -> list[list[int]]:
    """counts[i][j]: how often a bout of names[i] is followed by a bout of names[j]."""
    index = {name: position for position, name in enumerate(names)}
    counts = [[0] * len(names) for _ in names]
    for before, after in itertools.pairwise(bouts):
        counts[index[before.label]][index[after.label]] += 1
    return counts


def binned_budget(
    bouts: Sequence[Bout], names: Sequence[str], times: FrameTimes, bin_s: float
) -> list[BinBudget]:
    """The time budget per bin of ``bin_s`` seconds: every (bin, label) a row."""
    duration = times.duration_s
    count = max(1, int(np.ceil(duration / bin_s - 1e-9)))
    rows = []
    frame_bins = np.minimum((times.starts / bin_s).astype(np.int64), count - 1)
    for number in range(count):
        start, end = number * bin_s, min((number + 1) * bin_s, duration)
        length = end - start
        for name in names:
            own = [bout for bout in bouts if bout.label == name]
            inside = float(sum(max(0.0, min(b.end_s, end) - max(b.start_s, start)) for b in own))
            onsets = sum(1 for b in own if start <= b.start_s < end)
            frames = sum(
                int(np.count_nonzero(frame_bins[b.start_frame : b.end_frame + 1] == number))
                for b in own
            )
            rows.append(
                BinBudget(
                    bin=number,
                    start_s=start,
                    end_s=end,
                    label=name,
                    bouts=onsets,
                    frames=frames,
                    total_s=inside,
                    percent=100.0 * inside / length if length > 0 else 0.0,
                )
            )
    return rows

"""The exported graph's dynamic batch axis: every batch size from 1 to 64 gives per-clip answers
identical to running each clip alone."""

from __future__ import annotations

import numpy as np
from training.heldout import Runner

from behaviour_clips import LABELS, generate_clip

LARGEST_BATCH = 64


def test_every_batch_size_from_1_to_64_agrees_with_batch_1(run_model: Runner) -> None:
    clips = np.stack(
        [
            generate_clip(LABELS[index % len(LABELS)], 700 + index)[..., None]
            for index in range(LARGEST_BATCH)
        ]
    ).astype(np.float32) / np.float32(255.0)
    alone = np.concatenate([run_model(clips[index : index + 1]) for index in range(len(clips))])
    assert alone.shape == (LARGEST_BATCH, len(LABELS))
    for size in range(1, LARGEST_BATCH + 1):
        batched = run_model(clips[:size])
        assert batched.shape == (size, len(LABELS))
        np.testing.assert_allclose(batched, alone[:size], atol=1e-5, rtol=0)

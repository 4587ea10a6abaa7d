"""Many requests at once: every one answered, correctly, with its own id."""

from __future__ import annotations

import asyncio
import itertools

import httpx

from behaviour_clips import LABELS
from tests.request_ledger import new_request_id
from tests.served_model import ServedModel
from tests.uploads import ClipUploads

CONCURRENT = 50
SEEDS = (0, 1, 2)  # the held-out clips test_classify checks one by one


async def test_concurrent_classifications_are_all_answered_correctly(
    client: httpx.AsyncClient, model: ServedModel, clips: ClipUploads
) -> None:
    jobs = list(itertools.islice(itertools.cycle(itertools.product(SEEDS, LABELS)), CONCURRENT))
    ids = [new_request_id() for _ in jobs]
    for seed, label in jobs:
        clips.files(label, seed)  # encode up front, so the requests really go out together

    responses = await asyncio.gather(
        *(
            client.post(
                model.classify_url,
                files=clips.multipart("frames", label, seed),
                headers={"X-Request-ID": request_id},
            )
            for (seed, label), request_id in zip(jobs, ids, strict=True)
        )
    )

    statuses = [response.status_code for response in responses]
    assert statuses == [200] * CONCURRENT, statuses
    wrong = [
        f"{label} (seed {seed}) as {response.json()['label']}"
        for (seed, label), response in zip(jobs, responses, strict=True)
        if response.json()["label"] != label
    ]
    assert wrong == []
    assert [response.headers["x-request-id"] for response in responses] == ids
    assert [response.json()["request_id"] for response in responses] == ids

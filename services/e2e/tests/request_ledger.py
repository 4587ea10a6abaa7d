"""Every request the suite sends, with the id it sent and the status it got back.

The HTTP client's event hooks give each request an ``X-Request-ID`` of its own and note the
answer; tests that talk raw HTTP note theirs by hand. At the end of the run the ledger says which
access records must have arrived in the logs, and whether every id was echoed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx

REQUEST_ID_HEADER = "x-request-id"
#: Ids the service echoes (docs/api.md); any other id is replaced by one of its own.
ECHOED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def new_request_id() -> str:
    return f"e2e-{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class SentRequest:
    method: str
    path: str
    sent_id: str | None
    answered_id: str | None  # the response's X-Request-ID; None when no answer came
    status: int  # the status the access record must carry (499: the client went away)

    @property
    def request_id(self) -> str | None:
        """The id the service's access record carries."""
        return self.answered_id or self.sent_id


class RequestLedger:
    def __init__(self) -> None:
        self.requests: list[SentRequest] = []

    def note(
        self, method: str, path: str, sent_id: str | None, answered_id: str | None, status: int
    ) -> None:
        self.requests.append(SentRequest(method, path, sent_id, answered_id, status))

    async def on_request(self, request: httpx.Request) -> None:
        """httpx request hook: a fresh id unless the test chose one."""
        if REQUEST_ID_HEADER not in request.headers:
            request.headers[REQUEST_ID_HEADER] = new_request_id()

    async def on_response(self, response: httpx.Response) -> None:
        """httpx response hook: note the answer (its body need not have been read yet)."""
        request = response.request
        self.note(
            request.method,
            request.url.path,
            request.headers.get(REQUEST_ID_HEADER),
            response.headers.get(REQUEST_ID_HEADER),
            response.status_code,
        )

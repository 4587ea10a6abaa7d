"""When a request arrived, so admission control can see how long it waited to be started.

uvicorn reads a request, parses its head and creates the task that will run the app in one go;
the task's first step runs only when the worker's event loop reaches it. Under overload that is
where requests queue: dozens of tasks wait their turn on the loop while each one ahead of them
decodes and classifies, and none of them has reached the application yet, so an in-flight
counter cannot see them (at 256 connections clients waited ~0.6 s while the application's own
latency stayed under 10 ms). Stamping the moment uvicorn began reading each request makes that
wait measurable: the middleware sheds a request that has already waited longer than the budget,
before it costs any decoding, and exports the wait as a histogram.

The stamp is put in the ASGI scope under :data:`ARRIVAL_KEY`; servers that do not set it (an
ASGI test client, plain ``uvicorn classifier.main:create_app``) simply give no queue wait.
``python -m classifier`` passes the protocol to uvicorn. It builds on the httptools protocol's
``on_message_begin`` callback and ``scope`` attribute; if a uvicorn upgrade changes them, the
integration test ``test_requests_queued_behind_a_busy_worker_are_shed`` fails.
"""

from __future__ import annotations

import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

ARRIVAL_KEY = "classifier.arrived_at"


class ArrivalStampingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, stamping each request's scope with ``perf_counter()`` as
    its first bytes are parsed."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVAL_KEY] = time.perf_counter()  # type: ignore[literal-required]

"""uvicorn's HTTP/1.1 protocol (h11) answering malformed requests with problem+json instead of plain text.

uvicorn refuses requests h11 cannot parse (a NUL or control character in a header, a bad request line)
with a `text/plain` 400 of its own, before the application sees them; every other error of the API is
problem+json. `manage.py serve` runs uvicorn with `--http controlplane.uvicorn_http:ProblemH11Protocol`.
"""

from __future__ import annotations

import json
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class ProblemH11Protocol(H11Protocol):
    """`H11Protocol` whose protocol-error answer is a problem document with a fresh request id."""

    def send_400_response(self, msg: str) -> None:
        from controlplane.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE  # Django is set up by now

        request_id = os.urandom(16).hex()
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_BASE + "bad-request",
                "title": "Bad Request",
                "status": 400,
                "detail": msg,
                "request_id": request_id,
            }
        ).encode()
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

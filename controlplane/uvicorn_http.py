"""uvicorn's HTTP/1.1 protocols answering malformed requests with problem+json instead of plain text.

uvicorn refuses requests its parser rejects (a NUL or control character in a header, a bad request line,
a malformed chunked body) with a `text/plain` 400 of its own, before or while the application reads
them; every other error of the API is problem+json. `manage.py serve` runs uvicorn with
`--http controlplane.uvicorn_http:ProblemHttpToolsProtocol` (`controlplane.commandlines`): httptools'
C parser (llhttp) costs a fraction of h11's pure-Python state machine per response, which is what a
watch server answering 10,000 blocking queries at once spends its time on. `ProblemH11Protocol` is the
same answer on h11, kept for comparison (`commandlines.H11_PROTOCOL`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

#: The ASGI scope extension through which the watch server answers a request in one write, outside the
#: application's `send` (`CorkedCycle.send_whole`; `controlplane.watchserver.express`).
WHOLE_RESPONSE = "controlplane.whole_response"
#: Requests a connection may have waiting behind the one being answered (pipelining; browsers and proxies
#: send none, an HTTP client library a few).
PIPELINE_LIMIT = 32
#: h11's own bound on a request head (h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE), used by uvicorn
#: unless `--h11-max-incomplete-event-size` says otherwise.
HEAD_LIMIT_DEFAULT = 16 * 1024


def problem_400(msg: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the problem document for a request the protocol refused, with a fresh request id."""
    from controlplane.errors import closing_problem  # Django is set up by now

    return closing_problem(400, msg)


class _HeadCollector:
    """Stands in for the transport while uvicorn writes a response head: keeps the bytes instead."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class _Prefixed:
    """Stands in for the transport while uvicorn writes a body part: the held head goes out in front of it."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport = transport
        self.head = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data)

    def close(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = b""
        self.transport.close()


_default_blocks: tuple[list, bytes] = ([], b"")


def _default_block(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (Server, Date) as header lines, joined once per list: uvicorn makes a new
    list when the Date changes (once a second), and every request of that second holds the same one."""
    global _default_blocks
    held, block = _default_blocks
    if held is not default_headers:
        block = b"".join(name + b": " + value + b"\r\n" for name, value in default_headers)
        _default_blocks = (default_headers, block)
    return block


class CorkedCycle(RequestResponseCycle):
    """uvicorn's request/response cycle writing a response's head together with its first body part.

    A small answer is then one `send` system call instead of two (about 6 µs each on these machines; the
    watch server writes 10,000 answers at once). The head is held only until the end of the event loop's
    current step: a response whose body comes later (a stream) gets its head written then, not delayed.
    """

    _held: bytes | None = None
    _flush: asyncio.Handle | None = None

    async def send(self, message: Any) -> None:
        if not self.disconnected and self.transport.is_closing():
            # The client went away while this cycle was not the connection's newest (a request pipelined
            # behind it): uvicorn marks only the newest one disconnected, and uvloop, unlike asyncio, raises
            # on a write to a closed transport. Answer as uvicorn does for a gone client: drop the message.
            self.disconnected = True
        if message["type"] == "http.response.start" and not self.response_started and not self.disconnected:
            transport, collector = self.transport, _HeadCollector()
            self.transport = collector  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self._held = b"".join(collector.parts)
            self._flush = asyncio.get_running_loop().call_soon(self._write_held)
            return
        held = self._held
        if held is None:
            await super().send(message)
            return
        self._held = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        transport = self.transport
        prefixed = self.transport = _Prefixed(transport, held)  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if prefixed.head and not transport.is_closing():
                transport.write(prefixed.head)  # the body part was refused: the head as uvicorn would have sent it

    def send_whole(self, status: int, head: bytes, body: bytes) -> bool:
        """Write a complete response now, in one write, and complete the cycle as `send` would; False (and
        nothing written) when this cycle cannot take it that way, and the application's `send` answers instead.

        `head` is the response's own header lines (lower-case names, each ending in CRLF), without
        Connection or Transfer-Encoding, its Content-Length matching `body`. The watch server calls this for
        every watcher a change woke, all from one step of the event loop, before any of their tasks run
        (`controlplane.watchserver.express`): writing 10,000 answers is then 10,000 writes in a row, not
        10,000 trips through `send` interleaved with the bookkeeping of each request.
        """
        if self.response_started or self.disconnected or self.flow.write_paused or self.transport.is_closing():
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        self.transport.write(
            b"".join(
                (
                    STATUS_LINE[status],
                    _default_block(self.default_headers),
                    head,
                    b"\r\n" if self.keep_alive else b"connection: close\r\n\r\n",
                    b"" if self.scope["method"] == "HEAD" else body,
                )
            )
        )
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
        return True

    def _write_held(self) -> None:
        self._flush = None
        held, self._held = self._held, None
        if held and not self.disconnected and not self.transport.is_closing():
            self.transport.write(held)


class HeadTooLarge(Exception):
    """A request line plus headers longer than the protocol accepts (raised inside a parser callback)."""


class UnsupportedVersion(Exception):
    """A request line without HTTP/1.0 or HTTP/1.1 (raised inside a parser callback)."""


class PipelineTooDeep(Exception):
    """More requests pipelined behind one being answered than `PIPELINE_LIMIT` (raised in a parser callback)."""


class MissingHost(Exception):
    """An HTTP/1.1 request without exactly one Host header (raised inside a parser callback)."""


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose protocol-error answer is a problem document with a fresh request id.

    It also bounds the request head: llhttp streams a header to its callbacks however long it is, and
    uvicorn's httptools protocol keeps every piece, so a client could grow a connection's memory without
    end. The bound is the one h11 applies (`h11_max_incomplete_event_size`, 16 KiB by default).
    """

    _head_bytes = 0
    # Bytes fed while a head was being read and no parser callback fired: httptools keeps a header's
    # pieces until the header ends, so a header that never ends reaches no callback (`on_header`) at all.
    _head_pending = 0
    _reading_head = True
    _head_progress = False
    _refusal: str | None = None
    _deferred_400: str | None = None  # a refusal waiting for the answers to the requests before it

    def data_received(self, data: bytes) -> None:
        self._head_progress = False
        super().data_received(data)
        if not self._reading_head or self._head_progress or self.transport.is_closing():
            self._head_pending = 0  # the bytes after the last callback are at most this one chunk
            return
        self._head_pending += len(data)
        if self._head_bytes + self._head_pending > self._head_limit():
            self._head_bytes += self._head_pending
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._reading_head = True
        self._refusal = None
        super().on_message_begin()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True  # what follows on this connection is the next request's head

    def _head_limit(self) -> int:
        return self.config.h11_max_incomplete_event_size or HEAD_LIMIT_DEFAULT

    def _count_head(self, size: int) -> None:
        self._head_progress = True
        self._head_bytes += size
        if self._head_bytes > self._head_limit():
            raise HeadTooLarge  # httptools turns it into HttpParserCallbackError: a 400 below

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_progress = True
        existing = self.cycle
        if existing is not None and not existing.response_complete and len(self.pipeline) >= PIPELINE_LIMIT:
            # uvicorn queues pipelined requests without bound: one 256 KiB write of tiny ones held ~7,700.
            self._refusal = f"At most {PIPELINE_LIMIT} requests may wait behind one being answered."
            raise PipelineTooDeep  # while still reading a head: refused after the answers before it
        self._reading_head = False
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # llhttp takes "GET /path" alone as HTTP/0.9; h11 and gunicorn refuse it: so does this.
            raise UnsupportedVersion
        if version == "1.1" and sum(1 for name, _ in self.headers if name == b"host") != 1:
            # RFC 9112 3.2: exactly one Host in HTTP/1.1 (h11 refused these too; llhttp does not check).
            self._refusal = "An HTTP/1.1 request needs exactly one Host header."
            raise MissingHost
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            # Made by uvicorn just now, its task not started yet: it sends through `CorkedCycle.send`.
            self.cycle.__class__ = CorkedCycle
            self.scope.setdefault("extensions", {})[WHOLE_RESPONSE] = self.cycle.send_whole  # type: ignore[typeddict-unknown-key]

    def send_400_response(self, msg: str) -> None:
        if self._deferred_400 is not None:
            return  # already refused; the parser keeps failing on what follows
        if self._head_bytes > self._head_limit():
            msg = "The request line and headers are too large."
        elif self._refusal:
            msg = self._refusal
        cycle = self.cycle  # the request being read, or the previous one (complete) on a kept-alive connection
        if self._reading_head and cycle is not None and not cycle.response_complete:
            # A request pipelined behind one still being answered (a waiting watch): answers go out in
            # the order of the requests (RFC 9112 9.3.2), so this refusal waits for the earlier answers.
            self._deferred_400 = msg
            self.flow.pause_reading()
            return
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                # The application already answered part of this request (a malformed body after the
                # headers): a second status line would corrupt the stream, so only close it.
                self.transport.close()
                return
            # The application may be reading this request's body: it must see a disconnect, not an
            # end of body (the parser stopped mid-body), and must not write after this answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self._write_400(msg)

    def _write_400(self, msg: str) -> None:
        headers, body = problem_400(msg)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in [*self.server_state.default_headers, *headers]:
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if any
        msg = self._deferred_400
        if msg is not None and not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            if not self.transport.is_closing():
                self._write_400(msg)  # every request before the refused one is answered


class ProblemH11Protocol(H11Protocol):
    """`H11Protocol` whose protocol-error answer is a problem document with a fresh request id."""

    def send_400_response(self, msg: str) -> None:
        headers, body = problem_400(msg)
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()

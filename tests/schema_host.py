"""A real local HTTP server that would serve a JSON Schema to anyone who fetched it, and counts connections.

Tests of remote `$ref` refusal point schemas at it and assert that it saw no connection at all: had the
validator fetched the URL, it would have got a valid schema (`{"type": "string"}`) and the save would have
succeeded, so a fetch cannot hide behind an error either.
"""

from __future__ import annotations

import socketserver
import threading


class SchemaHost:
    """`with SchemaHost() as host:` -> `host.url("x.json")`, `host.connections` (every accepted socket)."""

    BODY = b'{"type": "string"}'

    def __init__(self) -> None:
        self.connections = 0
        host = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                host.connections += 1
                self.rfile.readline()
                self.wfile.write(
                    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(host.BODY)).encode()
                    + b"\r\n\r\n"
                    + host.BODY
                )

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "schema.json", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> SchemaHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def ref_variants(host: SchemaHost, existing_file: str) -> list[tuple[str, object]]:
    """(label, schema) pairs that each try to make the validator load something from outside the schema."""
    remote = host.url()
    return [
        ("http", {"$ref": remote}),
        ("https", {"$ref": host.url(scheme="https")}),
        ("file", {"$ref": f"file://{existing_file}"}),
        ("relative", {"$ref": "other.json"}),
        ("scheme-relative", {"$ref": f"//127.0.0.1:{host.port}/x.json"}),
        ("in items", {"type": "array", "items": {"$ref": remote}}),
        ("in properties", {"type": "object", "properties": {"a": {"$ref": remote}}}),
        ("in allOf", {"allOf": [{"type": "object"}, {"$ref": remote}]}),
        ("in $defs via local ref", {"$defs": {"a": {"$ref": remote}}, "$ref": "#/$defs/a"}),
        ("dynamicRef", {"$dynamicRef": remote}),
        ("nested $id", {"properties": {"a": {"$id": host.url("base/"), "$ref": "x.json"}}}),
        ("nested $id with local ref", {"properties": {"a": {"$id": host.url("base/"), "items": {"$ref": "#"}}}}),
        ("root $id then relative", {"$id": host.url("base/"), "properties": {"a": {"$ref": "x.json"}}}),
        ("unknown $schema", {"$schema": remote, "type": "string"}),
    ]

"""Answers the SDK returns that are more than plain JSON: discovered instances and pipeline runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

TERMINAL_RUN_STATUSES = frozenset({"succeeded", "failed", "dropped"})


@dataclass(frozen=True)
class Instance:
    """One discovered instance: where to send traffic (`url`, or `address`/`port`) and its status."""

    instance_id: str
    address: str
    port: int
    scheme: str = "http"
    url: str = ""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    status: str = "passing"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Instance:
        return cls(
            instance_id=data["instance_id"],
            address=data["address"],
            port=int(data["port"]),
            scheme=data.get("scheme", "http"),
            url=data.get("url") or f"{data.get('scheme', 'http')}://{data['address']}:{data['port']}",
            tags=tuple(data.get("tags") or ()),
            metadata=dict(data.get("metadata") or {}),
            status=data.get("status", "passing"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "address": self.address,
            "port": self.port,
            "scheme": self.scheme,
            "url": self.url,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "status": self.status,
        }


class Discovery(Sequence[Instance]):
    """A discovery answer: the instances, the registry `index` (None when the server sent none), and
    `stale`/`age` — `stale` is True when it was read from the outage cache, `age` its age in seconds."""

    #: Shadows `Sequence.index` (the registry index is what a discovery answer's index means).
    index: int | None  # type: ignore[assignment]

    def __init__(
        self,
        service: str,
        instances: Sequence[Instance],
        *,
        index: int | None = 0,
        stale: bool = False,
        age: float = 0.0,
    ) -> None:
        self.service = service
        self.instances = tuple(instances)
        self.index = index
        self.stale = stale
        self.age = age

    @overload
    def __getitem__(self, item: int) -> Instance: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[Instance]: ...
    def __getitem__(self, item: int | slice) -> Instance | Sequence[Instance]:
        return self.instances[item]

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __repr__(self) -> str:
        ids = ", ".join(i.instance_id for i in self.instances)
        return f"<Discovery {self.service} [{ids}] index={self.index} stale={self.stale}>"


@dataclass
class Run:
    """A pipeline run as `GET /runs/{id}/` answers it (`status` pending/running/succeeded/failed/dropped)."""

    id: int
    status: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def output(self) -> Any:
        return self.data.get("output")

    @property
    def error(self) -> Any:
        return self.data.get("error")

"""Run budgets: the limits a request's runs share, checked inside the pure executor and the runtime.

Plain data and arithmetic only (no ORM, no I/O, no settings): the runtime builds a `Budget` from
`pipelines.conf` per request; a test or a benchmark builds its own.

- `packet_bytes`: the packet's JSON size after every step. Tracked as an upper bound that grows with what
  steps write (`RunState.wrote`), measured exactly only when the bound passes the limit, so a run that
  stays well inside the limit never serializes its packet.
- `run_seconds`: wall-clock of one request's runs (a sync packet with its chains, a whole batch, one async
  run), checked after every step and before every chained run.
- `chained_runs`: pipeline runs one packet may cause through `{"pipeline": ...}` routes.
- `recorded_failures`: failed runs one request may record.
- `expression_limits`: numbers an expression computes (integer digits, finite floats: the expressions
  module raises `ExpressionError`, the step turns it into this budget).

Over budget the run fails naming the step and the budget, and the request delivers nothing.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

PACKET_BYTES = "packet_bytes"
RUN_SECONDS = "run_seconds"
CHAINED_RUNS = "chained_runs"
RECORDED_FAILURES = "recorded_failures"
EXPRESSION_LIMITS = "expression_limits"


class BudgetExceeded(Exception):  # noqa: N818 - reads as what happened, like DropPacket
    """A run went over one of its budgets; `budget` names which. Steps let it through unchanged."""

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget
        self.errors = [message]


@dataclass
class Budget:
    """The limits one request's runs share; `start()` fixes the wall-clock deadline."""

    max_packet_bytes: int = 256 * 1024
    max_seconds: float = 10.0
    max_chained_runs: int = 32
    max_recorded_failures: int = 1000
    deadline: float = field(default=float("inf"), init=False)

    def start(self) -> Budget:
        """Begin the wall clock now; returns self."""
        self.deadline = perf_counter() + self.max_seconds
        return self

    def limit_of(self, budget: str) -> str:
        """The limit of `budget` for messages, with its unit."""
        return {
            PACKET_BYTES: f"{self.max_packet_bytes} bytes",
            RUN_SECONDS: f"{self.max_seconds:g} s",
            CHAINED_RUNS: f"{self.max_chained_runs} chained runs",
            RECORDED_FAILURES: f"{self.max_recorded_failures} recorded failures",
        }.get(budget, "")


def json_bytes(value: Any) -> int:
    """The compact JSON size of `value` in bytes, as the API sends it.

    Raises BudgetExceeded for values JSON cannot hold as text (an integer past Python's digit limit).
    """
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (ValueError, RecursionError) as exc:
        raise BudgetExceeded(PACKET_BYTES, f"the packet cannot be encoded as JSON: {exc}") from None


def rough_bytes(value: Any) -> int:
    """An upper bound of `value`'s JSON size, exact for containers, O(1) for scalars.

    A string is at most 6 bytes per character (`\\u0000` escapes); a container is measured (the step
    that wrote it has just built or copied it, so this costs what that did).
    """
    kind = type(value)
    if kind is str:
        return 6 * len(value) + 2
    if kind is dict or kind is list:
        return json_bytes(value)
    if kind is int and not -(1 << 64) < value < (1 << 64):
        digits = value.bit_length() * 0.30103 + 2  # log10(2) digits per bit
        limit = sys.get_int_max_str_digits()
        if limit and digits > limit:  # Python could not even write it out: the response would be a 500
            raise BudgetExceeded(PACKET_BYTES, f"an integer has more than {limit} digits, too many to send as JSON")
        return int(digits) + 1
    return 24

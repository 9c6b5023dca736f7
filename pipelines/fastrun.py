"""The executor's fast path: straight-line Python generated for a pipeline whose first failing step ends the run.

`CompiledPipeline.run` uses it when no step skips its errors and the policy is `stop` (fastjsonschema's trick):
the same outcomes and log entries as the generic loop, without its per-step branching over policies that do
not apply. After every step it checks the wall-clock deadline (`run_seconds` budget); budget errors raised by
steps (`BudgetExceeded`, `ExpressionError`) mark `state.exceeded`.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from jmespath.exceptions import JMESPathError

from pipelines.budget import EXPRESSION_LIMITS, BudgetExceeded
from pipelines.expressions import ExpressionError
from pipelines.steps import DropPacket, RunState, StepError
from pipelines.steps.base import truthy

if TYPE_CHECKING:
    from pipelines.executor import CompiledStep

LATE = "late"  # the status when the wall-clock budget ran out after a step


_STEP_SOURCE = """
    t0 = perf_counter()
    try:
        apply_{i}(packet, state)
    except DropPacket:
        log.append((name_{i}, True, perf_counter() - t0, None, "dropped"))
        return "dropped", None, None
    except StepError as exc:
        message = str(exc)
        log.append((name_{i}, True, perf_counter() - t0, message, "error"))
        return "failed", message, exc.errors
    except BudgetExceeded as exc:
        message = str(exc)
        state.exceeded = exc.budget
        log.append((name_{i}, True, perf_counter() - t0, message, "error"))
        return "failed", message, None
    except RecursionError:
        message = "the packet nests too deeply for this step"
        log.append((name_{i}, True, perf_counter() - t0, message, "error"))
        return "failed", message, None
    except Exception as exc:
        message = f"{{type(exc).__name__}}: {{exc}}"
        log.append((name_{i}, True, perf_counter() - t0, message, "error"))
        return "failed", message, None
    now = perf_counter()
    log.append((name_{i}, True, now - t0, None, "ok"))
    if now > deadline:
        return "late", None, None
"""
_CONDITION_SOURCE = """
    try:
        run_it = truthy(condition_{i}.search(packet))
    except (JMESPathError, TypeError, ValueError) as exc:
        message = "condition failed: " + str(exc).splitlines()[0]
        if isinstance(exc, ExpressionError):
            state.exceeded = exc.budget
        log.append((name_{i}, True, 0.0, message, "error"))
        return "failed", message, None
    if not run_it:
        log.append((name_{i}, False, 0.0, None, "skipped"))
    else:
"""


def generate_fast_run(
    steps: list[CompiledStep],
) -> Callable[[dict, RunState, list, float], tuple[str, Any, Any]]:
    """Straight-line Python for a pipeline whose first failing step ends the run (fastjsonschema's trick).

    Same outcomes and log entries as the generic loop in `CompiledPipeline.run`, without its per-step
    branching over policies that do not apply.
    """
    namespace: dict[str, Any] = {
        "perf_counter": perf_counter,
        "DropPacket": DropPacket,
        "StepError": StepError,
        "BudgetExceeded": BudgetExceeded,
        "ExpressionError": ExpressionError,
        "EXPRESSION_LIMITS": EXPRESSION_LIMITS,
        "JMESPathError": JMESPathError,
        "truthy": truthy,
    }
    lines = ["def run(packet, state, log, deadline):"]
    for i, step in enumerate(steps):
        namespace[f"apply_{i}"] = step.apply
        namespace[f"name_{i}"] = step.name
        body = _STEP_SOURCE.format(i=i)
        if step.condition is not None:
            namespace[f"condition_{i}"] = step.condition
            body = _CONDITION_SOURCE.format(i=i) + "\n".join(
                "    " + line if line else line for line in body.splitlines()
            )
        lines.append(body)
    lines.append('    return "succeeded", None, None')
    exec(compile("\n".join(lines), "<pipeline>", "exec"), namespace)  # noqa: S102 - source built above from fixed templates
    return namespace["run"]

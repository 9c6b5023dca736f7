"""Signals of the config store.

`config_changed` is sent on commit of every applied change set, only by `configstore.services`, with
kwargs `namespace: str`, `revision: int` and `keys: list[str]` (never values).

`config_write_rejected` is sent by `configstore.services` when a change set is refused, after the refusal
has rolled its transaction back, with kwargs `namespace: str`, `reason: str` ("invalid": validation,
"conflict": a stale compare-and-swap, "forbidden": the actor may not make it) and `origin: str` (api,
admin, import, rollback, source:<name>; never keys or values). Other apps count refusals with it without
the config store knowing them (monitoring's `rejected_writes` series).
"""

from django.dispatch import Signal

config_changed = Signal()
config_write_rejected = Signal()

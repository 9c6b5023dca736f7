"""Signals of the config store.

`config_changed` is sent on commit of every applied change set, only by `configstore.services`, with
kwargs `namespace: str`, `revision: int` and `keys: list[str]` (never values).
"""

from django.dispatch import Signal

config_changed = Signal()

"""The embedded Celery broker: kombu's filesystem transport, made safe for several processes.

kombu's stock transport has three faults that crashed or lost work under `make run` (issue #10, point 8):

* a message file is created empty and then written, and a consumer may take it in between: it reads a
  partial file and the worker dies with `JSONDecodeError`;
* a consumer "claims" a message by `shutil.move` into the system temporary directory, a copy-and-delete
  when that is another file system, which two consumers can both win;
* the message is deleted as soon as it is read, so a worker killed before it acknowledges the task loses it
  (acks_late and reject_on_worker_lost then mean nothing).

This transport writes every file to a temporary name and renames it into place (readers see a whole
message or none), claims a message with one `rename` inside the broker directory (exactly one consumer
wins), keeps a claimed message in `claimed/<host>-<pid>-<start time>/` until it is acknowledged, and puts
back the claims of processes that are gone when a consumer starts. Exchange tables get the same write-then-rename rule.
Selected by `CELERY_BROKER_TRANSPORT` in settings whenever the broker URL is `filesystem://`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.filesystem import LOCK_EX, exchange_queue_t, lock, unlock
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger("controlplane.broker")

_TMP_PREFIX = ".tmp-"  # never matches `<stamp>_<uuid>.<queue>.msg`, so no reader lists it


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None when no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_name(pid: int | None = None) -> str:
    """`<host>-<pid>-<start time>`: a reused pid (a restarted container, a reboot) is another owner."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}-{pid}-{_process_start(pid) or 0}"


def owner_alive(name: str) -> bool:
    """Whether the process that named a claim directory `name` still runs on this host."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another machine's (or a renamed container's) claims: the embedded broker is one host's
    return owner_name(int(parts[1])) == name


def write_atomically(folder: str | Path, name: str, data: bytes) -> Path:
    """Write `data` to `folder/name` so that no reader ever sees a partial file.

    No fsync: the broker must survive a crashed process, not a power cut (a lost machine loses its embedded
    queue either way).
    """
    folder = Path(folder)
    tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    final = folder / name
    os.replace(tmp, final)
    return final


class Channel(filesystem.Channel):
    """Filesystem channel with atomic writes, rename claims and claims held until acknowledgement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._claims: dict[str, Path] = {}  # delivery tag -> claimed file, until ack/reject/restore
        self._acking_queues: set[str] = set()  # consumed with no_ack=False
        self._orphans_restored = False
        self._claim_path: Path | None = None
        self._get_keeps_claim: bool | None = None  # set during basic_get: that call's no_ack decides
        super().__init__(*args, **kwargs)

    # --- where claims live ------------------------------------------------------------------------
    @property
    def claimed_root(self) -> Path:
        return Path(self.processed_folder) / "claimed"

    @property
    def owner(self) -> str:
        return owner_name()

    def _claim_dir(self) -> Path:
        if self._claim_path is None:
            self._claim_path = self.claimed_root / self.owner
            self._claim_path.mkdir(parents=True, exist_ok=True)
        return self._claim_path

    def restore_orphans(self) -> int:
        """Put back in the queue every message claimed by a process of this host that is gone."""
        restored = 0
        try:
            owners = list(self.claimed_root.iterdir())
        except FileNotFoundError:
            return 0
        for owner_dir in owners:
            if owner_alive(owner_dir.name):
                continue
            for path in list(owner_dir.iterdir()):
                try:
                    os.replace(path, Path(self.data_folder_in) / path.name)
                    restored += 1
                except FileNotFoundError:  # another consumer restored it first
                    continue
            try:
                owner_dir.rmdir()
            except OSError:
                pass
        if restored:
            logger.warning("embedded broker: put back %d message(s) claimed by stopped processes", restored)
        return restored

    # --- messages -----------------------------------------------------------------------------------
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_atomically(self.data_folder_out, name, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out!r}") from exc

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if not no_ack:
            self._acking_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        self._get_keeps_claim = not no_ack
        try:
            return super().basic_get(queue, no_ack=no_ack, **kwargs)
        finally:
            self._get_keeps_claim = None

    def _get(self, queue: str) -> Any:
        if not self._orphans_restored:
            self._orphans_restored = True
            self.restore_orphans()
        wanted = f"{queue}.msg"
        # Messages nobody will acknowledge (no_ack consumers: celery's pidbox replies) are not kept.
        keep_claim = queue in self._acking_queues if self._get_keeps_claim is None else self._get_keeps_claim
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = self._claim_dir() / filename
            try:
                # One rename in one file system: exactly one consumer gets the message.
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:
                continue
            try:
                payload = loads(bytes_to_str(claimed.read_bytes()))
            except ValueError:
                # Cannot happen with atomic writes; a file from elsewhere must not kill the worker.
                bad = Path(self.processed_folder) / f"unreadable-{filename}"
                os.replace(claimed, bad)
                logger.error("embedded broker: unreadable message moved to %s", bad)
                continue
            tag = (payload.get("properties") or {}).get("delivery_tag")
            if keep_claim and tag:
                self._claims[tag] = claimed
            else:
                claimed.unlink(missing_ok=True)
            return payload
        raise Empty()

    def _settle(self, delivery_tag: str) -> None:
        path = self._claims.pop(delivery_tag, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        self._settle(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        self._settle(delivery_tag)

    def _restore(self, message: Any) -> None:
        # Put back (a copy) first, then drop the claim: a crash in between duplicates, never loses.
        super()._restore(message)
        self._settle(message.delivery_tag)

    def close(self) -> None:
        super().close()  # restores unacknowledged messages (-> _restore -> claims settled)
        if self._claim_path is not None and not self._claims:
            try:
                self._claim_path.rmdir()  # fails while another channel of this process holds a claim: fine
            except OSError:
                pass

    # --- exchange tables (fanout bindings) ------------------------------------------------------------
    def get_table(self, exchange: str) -> list:
        """The bindings on disk (every process's) plus those this process has declared in memory.

        kombu keeps declared bindings in one in-memory state per process, shared by its threads: once one
        thread has recorded a binding there, another thread's `queue_bind` returns at once and may publish
        before the first thread has written the binding to disk; reading only the file then finds no route
        and the message is dropped as unroutable.
        """
        file = self._exchange_file(exchange)
        try:
            table = [exchange_queue_t(*q) for q in loads(bytes_to_str(file.read_bytes()))]
        except FileNotFoundError:
            table = []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        known = self.state.exchanges.get(exchange, {}).get("table", ())
        return table + [exchange_queue_t(*q) for q in known if exchange_queue_t(*q) not in table]

    def _update_table(self, exchange: str, change) -> None:  # type: ignore[no-untyped-def]
        """Read-modify-write an exchange table under a lock file, replacing the table atomically."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(f"{file}.lock", "ab") as guard:
            lock(guard, LOCK_EX)
            try:
                queues = self.get_table(exchange)
                updated = change(list(queues))
                if updated != queues:
                    write_atomically(file.parent, file.name, str_to_bytes(dumps(updated)))
            finally:
                unlock(guard)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        value = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda queues: queues if value in queues else [value, *queues])

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any) -> None:
        filesystem.virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        value = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda queues: [q for q in queues if q != value])


class Transport(filesystem.Transport):
    """kombu's filesystem transport with the channel above."""

    Channel = Channel
    global_state = filesystem.virtual.BrokerState()

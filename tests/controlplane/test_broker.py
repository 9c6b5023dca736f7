"""The embedded broker (controlplane/broker.py): no partial reads, one consumer per message, nothing lost
with a killed consumer. Plain kombu connections on temporary folders; no Django database needed.

kombu's stock filesystem transport fails the first test (JSONDecodeError: a reader takes a message file
the writer has created but not yet filled) and the third (the message is deleted when read).
Every test uses its own queue names: kombu keeps declared bindings in process-wide state, so a name reused
with another folder would skip writing that folder's exchange table.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from kombu import Connection

from controlplane.broker import Transport


def _connection(root: Path, transport=Transport) -> Connection:  # type: ignore[no-untyped-def]
    for sub in ("queue", "processed", "control"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(root / "queue"),
            "data_folder_out": str(root / "queue"),
            "processed_folder": str(root / "processed"),
            "control_folder": str(root / "control"),
            "polling_interval": 0.001,
        },
    )


def _drain(root: Path, queue: str, expected: int, got: list, errors: list, *, transport=Transport) -> None:  # type: ignore[no-untyped-def]
    with _connection(root, transport) as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while len(got) < expected:
                try:
                    message = simple.get(timeout=30)
                except simple.Empty:
                    return
                got.append(message.payload["n"])
                message.ack()
        except Exception as exc:  # the failure under test: reported, not lost in the thread
            errors.append(exc)
        finally:
            simple.close()


@pytest.mark.parametrize(("payload_bytes", "count"), [(200_000, 60), (2_000_000, 15)])
def test_a_reader_racing_a_writer_never_sees_a_partial_message(tmp_path, payload_bytes, count) -> None:  # type: ignore[no-untyped-def]
    got: list[int] = []
    errors: list[BaseException] = []
    queue = f"race-{payload_bytes}"
    reader = threading.Thread(target=_drain, args=(tmp_path, queue, count, got, errors))
    reader.start()
    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue(queue)
        for n in range(count):
            simple.put({"n": n, "blob": "x" * payload_bytes})
        simple.close()
    reader.join(60)
    assert not errors, errors[0]
    assert sorted(got) == list(range(count))
    assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path / "queue"))


def test_competing_consumers_each_message_exactly_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    count = 400
    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue("work")
        for n in range(count):
            simple.put({"n": n})
        simple.close()
    got: list[int] = []
    errors: list[BaseException] = []
    readers = [threading.Thread(target=_drain, args=(tmp_path, "work", count, got, errors)) for _ in range(4)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    assert not errors, errors[0]
    assert sorted(got) == list(range(count)), "a message was lost or delivered twice"


def _take_and_die(root: str) -> None:
    with _connection(Path(root)) as conn:
        simple = conn.SimpleQueue("jobs")
        message = simple.get(timeout=10)
        assert message.payload["n"] == 1
        os._exit(0)  # killed before acknowledging (SIGKILL, OOM): no clean-up runs


def test_a_message_taken_by_a_consumer_that_died_unacknowledged_is_delivered_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue("jobs")
        simple.put({"n": 1})
        simple.close()
    child = multiprocessing.get_context("fork").Process(target=_take_and_die, args=(str(tmp_path),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert not [name for name in os.listdir(tmp_path / "queue") if name.endswith(".jobs.msg")], "not taken?"
    got: list[int] = []
    errors: list[BaseException] = []
    _drain(tmp_path, "jobs", 1, got, errors)
    assert not errors and got == [1]


def test_acknowledged_and_no_ack_messages_leave_no_claim_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue("acked")
        for n in range(3):
            simple.put({"n": n})
        for _ in range(3):
            simple.get(timeout=5).ack()
        simple.put({"n": 9})
        channel = conn.default_channel
        message = channel.basic_get("acked", no_ack=True)
        assert message is not None and message.payload["n"] == 9
        claimed = tmp_path / "processed" / "claimed"
        assert [path for path in claimed.rglob("*") if path.is_file()] == []
        simple.close()


def test_a_message_rejected_with_requeue_comes_back_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue("again")
        simple.put({"n": 5})
        simple.get(timeout=5).requeue()
        again = simple.get(timeout=5)
        assert again.payload["n"] == 5
        again.ack()
        with pytest.raises(simple.Empty):
            simple.get(timeout=0.3)
        simple.close()
    assert [path for path in (tmp_path / "processed").rglob("*") if path.is_file()] == []


def test_claims_of_a_reused_pid_or_another_host_are_put_back_but_a_live_owner_keeps_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from controlplane.broker import owner_name

    with _connection(tmp_path) as conn:
        simple = conn.SimpleQueue("owners")
        for n in range(3):
            simple.put({"n": n})
        simple.close()
    queue_dir, claimed = tmp_path / "queue", tmp_path / "processed" / "claimed"
    files = sorted(queue_dir.iterdir())
    live = owner_name()  # this test process: alive, same start time
    reused = live.rsplit("-", 1)[0] + "-1"  # same pid, another start time: the pid was reused
    elsewhere = f"another-host-{os.getpid()}-1"
    for owner, path in zip((live, reused, elsewhere), files, strict=True):
        (claimed / owner).mkdir(parents=True)
        os.replace(path, claimed / owner / path.name)
    got: list[int] = []
    errors: list[BaseException] = []
    _drain(tmp_path, "owners", 2, got, errors)
    assert not errors and len(set(got)) == 2 and set(got) <= {0, 1, 2}
    assert [p.name for p in (claimed / live).iterdir()] == [files[0].name], "a live owner's claim was taken"

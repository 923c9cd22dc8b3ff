"""Decision ids: UUIDv7 layout, and random bits that never repeat (threads, refills, fork)."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest

from banditroute.service.storage.ids import decision_created_at, new_decision_id


def test_ids_are_uuidv7_with_the_given_millisecond() -> None:
    at = datetime(2026, 11, 27, 23, 0, 0, 5000, tzinfo=UTC)
    ids = [new_decision_id(at) for _ in range(1000)]  # spans several 4 KiB random blocks
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert {decision_created_at(i) for i in ids} == {at}
    assert len(set(ids)) == len(ids)


def test_ids_from_many_threads_never_repeat() -> None:
    at = datetime(2026, 11, 27, tzinfo=UTC)  # same millisecond: only the random bits differ
    results: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def work(out: list[uuid.UUID]) -> None:
        out.extend(new_decision_id(at) for _ in range(5000))

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for r in results for i in r]
    assert len(set(every)) == len(every) == 40000


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork")
def test_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    at = datetime(2026, 11, 27, tzinfo=UTC)
    new_decision_id(at)  # the parent now holds a partly used random block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: send 50 ids and leave without running pytest's teardown
        os.write(write_end, b"".join(new_decision_id(at).bytes for _ in range(50)))
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    child = {data[i : i + 16] for i in range(0, len(data), 16)}
    parent = {new_decision_id(at).bytes for _ in range(50)}
    assert len(child) == 50
    assert not child & parent

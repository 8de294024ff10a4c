"""The bounded FIFO between the pipeline and an output thread (monitor/sinks/inbox.py)."""

from __future__ import annotations

import threading
import time

from monitor.sinks.inbox import Inbox


def test_bounded_and_in_order() -> None:
    box: Inbox[int] = Inbox(3)
    assert [box.put(i) for i in range(5)] == [True, True, True, False, False]
    assert box.take(2) == [0, 1]
    assert box.put(9)
    assert box.take(10) == [2, 9] and len(box) == 0 and box.take(10) == []


def test_a_sleeping_reader_is_woken_by_a_put() -> None:
    box: Inbox[int] = Inbox(10)
    got: list[list[int]] = []
    reader = threading.Thread(target=lambda: got.append(box.take(5, block_s=30)))
    reader.start()
    time.sleep(0.2)  # the reader is asleep in take()
    box.put(1)
    reader.join(5)
    assert not reader.is_alive() and got == [[1]]


def test_wake_ends_a_wait_with_nothing() -> None:
    box: Inbox[int] = Inbox(10)
    got: list[list[int]] = []
    reader = threading.Thread(target=lambda: got.append(box.take(5, block_s=30)))
    reader.start()
    time.sleep(0.2)
    box.wake()
    reader.join(5)
    assert not reader.is_alive() and got == [[]]


def test_one_writer_one_reader_lose_nothing() -> None:
    box: Inbox[int] = Inbox(1000)
    out: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not (done.is_set() and len(box) == 0):
            out.extend(box.take(100, block_s=0.05))

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    for i in range(50_000):
        while not box.put(i):
            time.sleep(0)
        sent += 1
    done.set()
    reader.join(10)
    assert out == list(range(sent))

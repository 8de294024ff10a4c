"""The overhead floor: the cheapest possible monitor, a no-op program on raw sys_enter
and sys_exit. Anything a real monitor costs above this is its own work, not the price
of having a BPF program on every syscall.

Run by the harness as a subprocess: prints "ready" once attached, detaches on SIGTERM
or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import threading

PROGRAM = """
RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }
RAW_TRACEPOINT_PROBE(sys_exit) { return 0; }
"""


def main() -> int:
    from bcc import BPF

    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    bpf = BPF(text=PROGRAM)  # RAW_TRACEPOINT_PROBE attaches at load
    print("ready", flush=True)
    stop.wait()
    bpf.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

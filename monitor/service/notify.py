"""sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET.

systemd's Type=notify waits for READY=1 before it considers the service started, so
`systemctl start ringwatch` returns only once the programs are attached. When the
variable is unset (a foreground `ringwatch run`), every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def _address(raw: str) -> str | bytes:
    # A leading "@" names a socket in the abstract namespace (a leading NUL byte).
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


class Notifier:
    """Sends state changes to the service manager; failures are counted, never raised.

    A service must keep running if the manager's socket disappears, so a send error is
    only recorded (and reported in `ringwatch stats`).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        raw = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = _address(raw) if raw else None
        self.sent = 0
        self.errors = 0
        self.last_error = ""

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """One datagram of KEY=value lines; True when the manager got it."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self.address)
                s.sendall(payload)
        except OSError as exc:
            self.errors += 1
            self.last_error = str(exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        # MAINPID lets the manager track us even when started through a wrapper.
        return self.send(ready=1, status=status, mainpid=os.getpid())

    def status(self, status: str) -> bool:
        return self.send(status=status)

    def reloading(self, status: str = "reloading configuration and rules") -> bool:
        # MONOTONIC_USEC is what Type=notify-reload (systemd >= 253) requires; older
        # managers ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(reloading=1, status=status, monotonic_usec=usec)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(stopping=1, status=status)

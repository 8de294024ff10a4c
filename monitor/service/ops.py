"""Service plumbing around the main loop: sd_notify, the control socket, the drop alert.

The daemon calls `started()` once programs are attached, `tick()` on every loop turn,
`reloading()`/`reloaded()` around a SIGHUP, and `stopping()`/`close()` on the way out.
Everything here is cheap when idle: the control socket is polled without blocking and
drop counters are read at most once per drop_alert.check_interval_s.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config import Config
from monitor.service import maps
from monitor.service.control import ControlError, ControlServer
from monitor.service.dropwatch import DropWatch
from monitor.service.metrics import MetricsServer
from monitor.service.notify import Notifier
from monitor.service.stats import LossCounts
from monitor.service.tail import Subscribable, TailHub


class Operations:
    def __init__(
        self,
        cfg: Config,
        *,
        stats: Callable[[], dict[str, Any]],
        losses: Callable[[], LossCounts],
        alert: Callable[[dict[str, Any]], None],
        pin_dir: str,
        notifier: Notifier | None = None,
        warn: Callable[..., Any] | None = None,
        info: Callable[..., Any] | None = None,
        emit: Subscribable | None = None,
        status_interval_s: float = 10.0,
    ) -> None:
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.pin_dir = pin_dir
        self._losses = losses
        self._stats = stats
        # How often `systemctl status` gets a fresh one-line summary.
        self.status_interval_s = status_interval_s
        self._last_status: float | None = None
        self._alert = alert
        self.tail = TailHub(emit) if emit is not None else None
        streams = {"tail": self.tail.accept} if self.tail is not None else {}
        self.control = ControlServer(Path(cfg.control.socket), {"stats": stats, "info": self.info}, streams)
        self.drops = self._dropwatch(cfg)
        self.reloads = 0
        self.reload_errors = 0
        self.last_reload_error = ""
        self.control_error = ""
        self._warn = warn or (lambda *a, **k: None)
        self._info = info or (lambda *a, **k: None)
        self.metrics: MetricsServer | None = None
        self.metrics_error = ""

    @staticmethod
    def _dropwatch(cfg: Config) -> DropWatch:
        return DropWatch(min_interval_s=cfg.drop_alert.min_interval_s,
                         check_interval_s=cfg.drop_alert.check_interval_s)

    def info(self) -> dict[str, Any]:
        """What a client needs to find the daemon's kernel objects."""
        return {
            "pid": os.getpid(),
            "pin_dir": self.pin_dir,
            "config": self.cfg.source,
            "control_socket": str(self.control.path),
        }

    def started(self, status: str) -> None:
        # The socket opens before READY=1 so that once systemd reports the service up,
        # `ringwatch stats` works.
        self._open_control(self.control)
        now = time.monotonic()
        self.drops.start(now)
        self._last_status = now  # READY carries the first status line
        self._start_metrics()
        self.notifier.ready(status)

    def _start_metrics(self) -> None:
        """Like the control socket: a taken port costs the metrics, not the monitor."""
        if not self.cfg.metrics.enabled:
            return
        pid, pin_dir = os.getpid(), self.pin_dir
        server = MetricsServer(self.cfg.metrics.address,
                               lambda: maps.report(pid, pin_dir, count=False))
        try:
            bound = server.start()
        except OSError as exc:
            self.metrics_error = f"metrics.address {self.cfg.metrics.address}: {exc.strerror or exc}"
            self._warn("metrics_unavailable", error=self.metrics_error)
            return
        self.metrics_error = ""
        self.metrics = server
        server.publish(self._stats())  # a scrape right after READY=1 sees numbers
        self._info("metrics_listening", address=bound)

    def _stop_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def tick(self) -> None:
        self.control.serve_pending()
        if self.tail is not None:
            self.tail.reap()
        now = time.monotonic()
        if self.metrics is not None and self.metrics.due(now):
            try:
                self.metrics.publish(self._stats())
            except Exception as exc:  # stale metrics are not worth stopping the monitor for
                self._warn("metrics_snapshot_failed", error=f"{type(exc).__name__}: {exc}")
        if self.cfg.drop_alert.enabled and self.drops.due(now):
            alert = self.drops.check(self._losses(), now)
            if alert is not None:
                self._alert(alert)
        if self.notifier.enabled and (
            self._last_status is None or now - self._last_status >= self.status_interval_s
        ):
            self._last_status = now
            try:
                line = self.summary()
            except Exception as exc:  # a status line is not worth stopping the monitor for
                self._warn("status_summary_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                self.notifier.status(line)

    def summary(self) -> str:
        """The STATUS= line: what `systemctl status ringwatch` shows under the unit."""
        snap = self._stats()
        events = sum(snap.get("events", {}).values())
        lost = snap.get("drops", {}).get("records_lost", 0)
        alerts = snap.get("alerts", {}).get("total", 0)
        return f"watching: {events} events, {lost} records lost, {alerts} alerts"

    def _open_control(self, server: ControlServer) -> None:
        # Monitoring matters more than its stats socket: a second instance sharing the
        # path, or an unwritable /run, costs `ringwatch stats`, not the monitor.
        try:
            server.open()
            self.control_error = ""
        except ControlError as exc:
            self.control_error = str(exc)
            self._warn("control_socket_unavailable", error=str(exc))

    def reloading(self) -> None:
        self.notifier.reloading()

    def reloaded(self, cfg: Config | None, status: str, error: str = "") -> None:
        """Take over the settings that can change without reloading kernel programs.

        `cfg` is None when the new config was rejected: the old one stays in force and
        the service stays up (systemctl reload must never kill the monitor). `error` is
        set when the config was taken over but another part of the reload (the rules)
        was rejected. Either way the reload counts as failed: `reload_errors` in stats,
        and ERRNO= to the service manager, which `systemctl status` shows beside STATUS=."""
        if cfg is None and not error:
            error = status
        if error:
            self.reload_errors += 1
            self.last_reload_error = error
        else:
            self.reloads += 1
            self.last_reload_error = ""
        if cfg is not None:
            if cfg.control.socket != self.cfg.control.socket:
                old = self.control
                old.close()
                self.control = ControlServer(Path(cfg.control.socket), old.handlers, old.streams)
                self._open_control(self.control)
            metrics_changed = cfg.metrics != self.cfg.metrics
            if cfg.drop_alert != self.cfg.drop_alert:
                # Keep the baseline: drops counted so far are still owed an alert.
                self.drops.min_interval_s = cfg.drop_alert.min_interval_s
                self.drops.check_interval_s = cfg.drop_alert.check_interval_s
            self.cfg = cfg
            if metrics_changed:
                self._stop_metrics()
                self._start_metrics()
        self.notifier.send(ready=1, status=status, errno=errno.EINVAL if error else 0)

    def stopping(self) -> None:
        self.notifier.stopping()

    def close(self) -> None:
        self.control.close()
        if self.tail is not None:
            self.tail.close()
        self._stop_metrics()

    def stats(self) -> dict[str, Any]:
        return {
            "notify_socket": self.notifier.enabled,
            "notify_sent": self.notifier.sent,
            "notify_errors": self.notifier.errors,
            "control_socket": str(self.control.path),
            "control_error": self.control_error,
            "control_requests": self.control.requests,
            "control_errors": self.control.errors,
            "metrics_error": self.metrics_error,
            "reloads": self.reloads,
            "reload_errors": self.reload_errors,
            # Why the last reload failed ("" once one succeeds): what `ringwatch reload` prints.
            "last_reload_error": self.last_reload_error,
            "drop_alert": self.drops.stats(),
            **({"tail": self.tail.stats()} if self.tail is not None else {}),
        }

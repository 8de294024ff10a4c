"""`ringwatch run`: the sensor feeds the pipeline (monitor.pipeline) until a signal or the duration ends."""

from __future__ import annotations

import gc
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from monitor import config as configmod
from monitor import log
from monitor.config import Config
from monitor.enforce.enforcer import EnforcementUnavailable, Enforcer
from monitor.enforce.rules import deny_specs
from monitor.errors import ConfigError, UserError
from monitor.events import writers
from monitor.events.catalog import CATALOGUE, OPEN_TYPES
from monitor.events.cgroup_paths import CgroupPaths
from monitor.kernel.filters import bpf_commands, open_path_prefixes
from monitor.kernel.sensor import NS_PER_TICK, Sensor
from monitor.lineage import procfs
from monitor.lineage.cache import Lineage
from monitor.lineage.watch import LineageWatch
from monitor.pipeline import Pipeline
from monitor.rules import RuleSet, RuleSources
from monitor.rules import load as load_rules
from monitor.rules.background import BackgroundLoad
from monitor.service import stats
from monitor.service.ops import Operations
from monitor.sinks.base import Sink

# How often the main loop flushes outputs, answers the control socket, checks losses.
HOUSEKEEPING_S = 0.1


@dataclass
class RunOptions:
    duration: float | None = None
    event_sinks: list[Sink] = field(default_factory=list)
    # Where alerts go (rule matches and ringwatch's own, e.g. the drop alert).
    alert_sinks: list[Sink] = field(default_factory=list)
    # What SIGHUP re-reads: the same file and --set overrides as at start.
    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    # Rules files; SIGHUP re-reads the same sources.
    rule_sources: RuleSources = field(default_factory=configmod.rule_sources)
    # Refuse to start when deny rules cannot be enforced (no BPF LSM, or disabled).
    require_enforcement: bool = False
    # run --allow-unsafe-files: the config on SIGHUP is read as at start.
    allow_unsafe_files: bool = False


class Monitor:
    def __init__(self, cfg: Config, opts: RunOptions) -> None:
        self.cfg = cfg
        self.opts = opts
        self.log = log.get("ringwatch")
        # Loaded before the sensor starts: bad rules stop `run` with every error listed.
        self.rules: RuleSet = load_rules(opts.rule_sources)
        self.log.info("rules_loaded", rules=len(self.rules.rules), files=self.rules.files,
                      skipped={s.name: s.reason for s in self.rules.skipped})
        self.enforcer = self._make_enforcer(cfg, opts)
        wanted = self.enforcer is not None and self.enforcer.wanted(cfg.enforcement.always_load)
        self.pipeline = Pipeline(self.rules, opts.event_sinks, opts.alert_sinks, self.enforcer)
        self.pipeline.throttle.watch.min_interval_s = cfg.drop_alert.min_interval_s
        self.sensor = Sensor(cfg.sensor, self.pipeline, log=self.log, lineage=cfg.lineage,
                             extension=self.enforcer if wanted else None)
        if self.enforcer is not None and not wanted:
            self.enforcer.skip()
        self.lineage_watch: LineageWatch | None = None
        self._stop = False
        self._reload = False
        self._rules_load: BackgroundLoad | None = None  # a SIGHUP's rules, loading off the loop
        self._rules_again = False  # another SIGHUP came during that load
        self._pending_config: tuple[Config | None, str] = (None, "")
        self._started = time.monotonic()
        self.ops = Operations(
            cfg, stats=self.stats, losses=self._losses, alert=self.pipeline.emit.alert, warn=self.log.warning,
            info=self.log.info, emit=self.pipeline.emit, pin_dir=cfg.lineage.bpffs_dir,
        )

    def _all_sinks(self) -> list[Sink]:
        return self.pipeline.emit.sinks()

    def _losses(self) -> stats.LossCounts:
        return stats.losses(self.sensor.counters(), stats.sink_stats(self._all_sinks()))

    def stats(self) -> dict[str, Any]:
        """The snapshot `ringwatch stats` prints; each part of the daemon adds its section."""
        snap = stats.collect(
            self.sensor.counters(),
            started_monotonic=self._started,
            config_source=self.cfg.source,
            ringbuf_bytes=self.sensor.ringbuf_bytes,
            outputs=stats.sink_stats(self._all_sinks()),
            alerts_by_rule=self.pipeline.emit.alert_counts,
        )
        snap["alerts"] = self.pipeline.emit.alert_stats()  # with priorities
        snap["service"] = self.ops.stats()
        rb = snap["ringbuf"]
        rb["fill_bytes"] = self.sensor.fill_bytes()
        rb["fill_hwm_bytes"] = self.sensor.fill_hwm_bytes
        rb["fill_hwm_pct"] = round(100.0 * self.sensor.fill_hwm_bytes / max(1, rb["bytes"]), 1)
        snap["kernel_filter"] = {"filtered_opens": self.sensor.filtered_opens()}
        snap["rules"] = self.rules.stats()
        snap["dns"] = self.pipeline.enrich.dns.stats()
        if self.enforcer is not None:
            snap["enforcement"] = self.enforcer.stats()
        if self.lineage_watch is not None:
            snap["lineage"] = self.lineage_watch.stats(self.sensor.lineage_counters())
        return snap

    def _do_reload(self) -> None:
        """SIGHUP: re-read the config now and the rules in a thread; report when both are done.

        A part that is rejected keeps its previous version in force, and the reload is
        reported as failed (log at error level, reload_errors, systemd status) even when
        the other part was taken over. The rules load (bounded, monitor.rules.limits) runs
        off the main loop, so the ring buffers keep being drained while it compiles."""
        if self._rules_load is not None:
            self._rules_again = True  # reported as one more reload once this one is done
            return
        self.ops.reloading()
        self._pending_config = self._reload_config()
        self._rules_load = BackgroundLoad.start(self.opts.rule_sources)
        self.log.info("rules_reload_started")

    def _reload_config(self) -> tuple[Config | None, str]:
        """(the new config, or None if it was refused; what to report)."""
        try:
            new = configmod.load(self.opts.config_path, self.opts.overrides,
                                 allow_unsafe=self.opts.allow_unsafe_files)
        except ConfigError as exc:
            self.log.error("reload_failed", error=str(exc))
            return None, f"reload failed, previous config kept: {exc}"
        restart = []
        if new.sensor != self.sensor.cfg:
            # Kernel programs are compiled with these; changing them means a restart.
            self.log.warning("reload_needs_restart", section="sensor")
            restart.append("sensor")
        if new.outputs != self.cfg.outputs:
            # Outputs hold queues, spools and connections; they are built once, at start.
            self.log.warning("reload_needs_restart", section="outputs")
            restart.append("outputs")
        for sink in self._all_sinks():
            sink.reopen()
        self.cfg = new
        pending = f"; restart to apply {', '.join(restart)}" if restart else ""
        return new, f"reloaded {new.source}{pending}"

    def _finish_rules_reload(self) -> None:
        result = None if self._rules_load is None else self._rules_load.poll()
        if result is None:
            return
        self._rules_load = None
        rules_error = self._apply_rules(result.ruleset, result.problems)
        new, status = self._pending_config
        if new is None:
            self.ops.reloaded(None, status)
        elif rules_error is not None:
            self.log.error("reload_failed", config=new.source, error=rules_error)
            self.ops.reloaded(new, f"reload failed, previous rules kept: {rules_error}", error=rules_error)
        else:
            self.ops.reloaded(new, status)
            self.log.info("reloaded", config=new.source)
        if self._rules_again:
            self._rules_again = False
            self._do_reload()

    def _make_enforcer(self, cfg: Config, opts: RunOptions) -> Enforcer | None:
        if not cfg.enforcement.enabled:
            if opts.require_enforcement:
                raise EnforcementUnavailable("enforcement required but enforcement.enabled is false")
            return None
        enforcer = Enforcer(require=opts.require_enforcement, warn=self.log.warning, info=self.log.info)
        # Untranslatable deny rules stop start-up here, before anything is attached.
        enforcer.apply(*deny_specs(self.rules, cfg.enforcement.mode))
        return enforcer

    def _apply_rules(self, ruleset: RuleSet | None, problems: list[Any]) -> str | None:
        """The new rules in force, or why not (the previous rules stay): None on success."""
        if ruleset is None:
            errors = [str(p) for p in problems]
            self.log.error("rules_reload_failed", errors=errors, kept_rules=len(self.rules.rules))
            return "; ".join(errors) or "rules rejected"
        if self.enforcer is not None:
            try:
                plan = self.enforcer.apply(*deny_specs(ruleset, self.cfg.enforcement.mode))
            except UserError as exc:
                self.log.error("rules_reload_failed", errors=str(exc).splitlines(),
                               kept_rules=len(self.rules.rules))
                return "; ".join(str(exc).splitlines())
            self.log.info("enforcement_reloaded", **plan.summary())
        self.rules = ruleset
        self.pipeline.judge.rules = ruleset
        self.pipeline.enrich.dns.watch(ruleset.dns_names())
        self._apply_syscall_filter()
        settle_heap()  # the rules replaced, frozen with the rest, can go now
        self.log.info("rules_reloaded", rules=len(ruleset.rules), files=ruleset.files,
                      skipped={s.name: s.reason for s in ruleset.skipped})
        return None

    def _housekeeping(self) -> None:
        self._finish_rules_reload()
        for sink in self.opts.event_sinks:
            sink.flush(0)
        self.ops.tick()
        watch = self.lineage_watch
        if watch is not None and watch.due(time.monotonic()):
            watch.tick(self.sensor.counters().lost(), self.sensor.lineage_counters()["inserts"])

    def _apply_syscall_filter(self) -> None:
        """Only syscalls some loaded rule (or sensor.extra_event_types) can use reach userspace."""
        types = self.rules.event_types()
        extra = self.cfg.sensor.extra_event_types
        alerting = self.rules.rules_with_action("alert")
        # A rule on who wrote an executable needs the writes below the tracked dirs (and
        # renames), whatever the open rules ask: only those, kept as writes-only prefixes.
        need_writers = writers.rules_need_writers(alerting)
        if types is None or "all" in extra:
            self.sensor.set_wanted_syscalls(CATALOGUE.wanted_numbers(None))
        else:
            wanted = set(types) | set(extra) | (set(writers.EVENT_TYPES) if need_writers else set())
            self.sensor.set_wanted_syscalls(CATALOGUE.wanted_numbers(wanted))
        # Deny/audit rules are decided in the kernel; only alert rules need records. Types
        # asked for outright (recording) are kept whatever their path or command.
        everything = "all" in extra
        prefixes = (None if everything or OPEN_TYPES & set(extra)
                    else open_path_prefixes(alerting, self.rules.field_of))
        self.sensor.set_open_prefixes(
            prefixes, writers.TRACKED_DIRS if need_writers else frozenset())
        self.sensor.set_bpf_commands(
            None if everything or "bpf" in extra else bpf_commands(alerting, self.rules.field_of))

    def _start_lineage(self) -> None:
        """After attach, so no process is missed between the /proc scan and tracing."""
        assert self.sensor.procs is not None
        lineage = Lineage(self.sensor.procs, self.cfg.lineage.ancestors_depth,
                          cache_entries=self.cfg.lineage.max_entries, ns_per_tick=NS_PER_TICK,
                          boot_id=Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        before = self.sensor.procs.count()
        # Read after the count: kernel inserts up to here are in `before` already.
        inserts_before = self.sensor.lineage_counters()["inserts"]
        added, refreshed = lineage.backfill(procfs.scan())
        self.pipeline.lineage.lineage = lineage
        self.lineage_watch = LineageWatch(lineage, self.sensor.procs, self.cfg.lineage.warn_utilisation_pct,
                                          self.log, base_entries=before + added,
                                          inserts_at_base=inserts_before)
        self.log.info("lineage_backfilled", added=added, refreshed=refreshed,
                      entries=self.lineage_watch.entries)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.log.info("signal", signal=signal.Signals(signum).name)
        if signum == signal.SIGHUP:
            self._reload = True
            return
        self._stop = True

    def run(self) -> int:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        t0 = time.monotonic()
        self.sensor.start()
        # Gone processes are named from their records' cgroup ids: which v1 hierarchy
        # cgroup.v1_id is in (the sensor's choice), and where the hierarchies are mounted.
        containers = self.pipeline.enrich.containers
        containers.cgroup1_controller = self.sensor.cgroup1_controller
        containers.paths = CgroupPaths.of_host()
        self._start_lineage()
        self._apply_syscall_filter()
        settle_heap()
        # Logged before READY=1 goes to systemd: once `systemctl start` returns, the line
        # has been written (the journal reads it from the stream on its own time).
        self.log.info("ready", startup_s=round(time.monotonic() - t0, 3), config=self.cfg.source)
        self.ops.started(f"monitoring; config {self.cfg.source}")
        deadline = None if self.opts.duration is None else time.monotonic() + self.opts.duration
        next_housekeeping = 0.0
        rc = 0  # 1 when an output lost records at close (ENOSPC)
        try:
            while not self._stop:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.sensor.poll()
                if self._reload:
                    self._reload = False
                    self._do_reload()
                now = time.monotonic()
                if now >= next_housekeeping:
                    # At a steady rate a poll returns with a record or two: this work,
                    # which reads kernel counters, must not run once per record.
                    next_housekeeping = now + HOUSEKEEPING_S
                    self._housekeeping()
            self.ops.stopping()
            self.sensor.stop_tracing()
            self.sensor.drain()
        finally:
            counters = self.sensor.counters()
            filtered = self.sensor.filtered_opens()
            hwm = self.sensor.fill_hwm_bytes
            self.sensor.close()
            self.pipeline.enrich.dns.stop()
            self.ops.close()
            for sink in self._all_sinks():
                try:  # one output failing to close must not leave the later ones open
                    sink.close()
                except Exception as exc:
                    self.log.error("output_close_failed", output=sink.name, error=str(exc))
                    rc = 1
            # What each output delivered, spooled or lost, once all were closed.
            self.log.info("outputs_closed", outputs=stats.sink_stats(self._all_sinks()))
            self.log.info("stopped", **self._counter_fields(counters),
                          ringbuf_fill_hwm_bytes=hwm, filtered_opens=filtered)
        return rc

    @staticmethod
    def _counter_fields(c: Any) -> dict[str, Any]:
        return {"produced": c.produced, "delivered": c.delivered, "drops": c.drops,
                "decode_errors": c.decode_errors}


def settle_heap() -> None:
    """Put what exists now out of the cyclic collector's sight (gc.freeze()).

    What start-up builds (rules, their compiled code, bcc's tables) lives as long as the
    process, and every full collection walked all of it: 78 ms each, measured live at
    25k records/s, while records waited in the ring. A reload first gives the frozen
    objects back (the rules it replaced may hold cycles) and collects them once.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


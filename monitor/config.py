"""ringwatch configuration: dataclasses, loaded from YAML and validated key by key.

Every section is a dataclass; the loader walks the YAML against the dataclass fields,
so an unknown key or a value of the wrong type is reported with its dotted key path
and the file it came from. Defaults here are what a config file may leave out.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor import paths, safefile
from monitor.errors import ConfigError
from monitor.events.catalog import ALL_EVENT_TYPES, FIELD_TYPES
from monitor.rules.loader import RuleSources
from monitor.sinks.settings import OutputsConfig
from monitor.yamltext import PARSE_FAILURES, describe

DEFAULT_CONFIG_PATH = Path("/etc/ringwatch/config.yaml")
# RINGWATCH_RULES_D points elsewhere (tests, staged installs).
SYSTEM_RULES_DIR = Path(os.environ.get("RINGWATCH_RULES_D", "/etc/ringwatch/rules.d"))


def rule_sources(rule_paths: Iterable[Path] = (), defaults: bool = True,
                 allow_unsafe: bool = False) -> RuleSources:
    """ringwatch's rules, in load order: the packaged ruleset, rules.d, then `rule_paths`."""
    return RuleSources(paths=tuple(rule_paths), defaults=defaults, default_dir=paths.rules_dir(),
                       system_dir=SYSTEM_RULES_DIR, allow_unsafe=allow_unsafe, fields=FIELD_TYPES)


@dataclass
class SensorConfig:
    # Syscall lane ring buffer size in bytes; rounded up to a power-of-two number of pages.
    # It holds one process's throttle burst (30000 records, 13.7 MB of opens of 64-byte paths,
    # up to 40 MB of records whose four paths are all 255 bytes long): a flood of distinct
    # records goes through the burst at the flooder's speed (~300k/s), far faster than
    # userspace drains, so a smaller lane lost ~20k records in the flood's first second
    # (README, "Floods"). The sensor warns when the lane is smaller than the burst.
    ringbuf_bytes: int = 32 * 1024 * 1024
    # Process lane (exec, fork, exit, deny, throttle records): a ring buffer of its own,
    # drained first, so no syscall flood can make lineage lose a record.
    process_ringbuf_bytes: int = 2 * 1024 * 1024
    # Identical syscall records from one process image within this window become one
    # record with a count (evt.count); 0 turns coalescing off.
    coalesce_window_ms: int = 500
    # Distinct (process, event) pairs the coalescing map holds (LRU; ~1.1 KB each).
    coalesce_entries: int = 4096
    # Syscall records per second (after coalescing) a process may send, and its burst;
    # beyond that records are counted as throttled and one alert names the process.
    # 0 = no limit. Measured (README, "Floods"): a `make -j2` build peaks at 3 records/s per
    # process and 225/s per cgroup; a package install's mandb trigger at 9.9k/s for 2 s
    # (19k records): the burst covers it, while a flood is held to the rate after it.
    throttle_process_rate: int = 2000
    throttle_process_burst: int = 30000
    # The same for all processes of one cgroup together.
    throttle_cgroup_rate: int = 5000
    throttle_cgroup_burst: int = 60000
    # At most one throttle record per process (or cgroup) per this many seconds.
    throttle_notice_interval_s: int = 10
    # Exec records waiting between sys_enter and sys_exit (threads in execve at once).
    pending_exec_max: int = 1024
    # cgroup v2 directories to restrict tracing to (with their descendants); [] = all.
    cgroups: list[str] = field(default_factory=list)
    # How long one ring-buffer poll may block, in milliseconds: also the longest a syscall
    # record waits to be read when fewer than wakeup_records come.
    poll_timeout_ms: int = 50
    # Syscall records per CPU that wake the consumer (1 = every record, libbpf's way).
    # Batching costs the monitor a third less CPU per record at 5k/s (bpf/sensor.bpf.c).
    wakeup_records: int = 256
    # Kernel BTF giving struct offsets; if unreadable, offsets come from headers (warned).
    btf_path: str = "/sys/kernel/btf/vmlinux"
    # Event types recorded even if no rule needs them (e.g. for --record); "all" = every
    # supported syscall. Otherwise the kernel drops syscalls no loaded rule can match.
    extra_event_types: list[str] = field(default_factory=list)


@dataclass
class LineageConfig:
    # bpffs directory where the lineage map is pinned, so a restart keeps it.
    bpffs_dir: str = "/sys/fs/bpf/ringwatch"
    # Lineage map size (processes, live and recently exited): about twice the live count.
    max_entries: int = 65536
    # Ancestors reported per event (proc.aname and friends), nearest first.
    ancestors_depth: int = 10
    # Warn when the lineage map is this full (percent of max_entries).
    warn_utilisation_pct: int = 90

    def validate(self, where: str, prefix: str) -> None:
        if not self.bpffs_dir.startswith("/"):
            raise ConfigError(f"{where}: {prefix}.bpffs_dir: must be absolute, got {self.bpffs_dir!r}")
        if not 64 <= self.max_entries <= 1 << 24:
            raise ConfigError(f"{where}: {prefix}.max_entries: must be 64..16777216, got {self.max_entries}")
        if not 0 <= self.ancestors_depth <= 64:
            raise ConfigError(f"{where}: {prefix}.ancestors_depth: must be 0..64, got {self.ancestors_depth}")
        if not 1 <= self.warn_utilisation_pct <= 100:
            raise ConfigError(f"{where}: {prefix}.warn_utilisation_pct: must be 1..100")


@dataclass
class ControlConfig:
    # Unix socket on which the running daemon answers `ringwatch stats` and `ringwatch maps`.
    socket: str = "/run/ringwatch/control.sock"

    def validate(self, where: str, prefix: str) -> None:
        if not self.socket.startswith("/"):
            raise ConfigError(f"{where}: {prefix}.socket: must be an absolute path, got {self.socket!r}")
        if len(self.socket.encode()) > 107:  # sun_path is 108 bytes with its NUL
            raise ConfigError(f"{where}: {prefix}.socket: longer than 107 bytes: {self.socket!r}")


@dataclass
class MetricsConfig:
    # Serve Prometheus metrics (every `ringwatch stats` counter) over HTTP.
    enabled: bool = False
    # HOST:PORT to listen on; loopback by default: the metrics say what runs on the host.
    # Port 0 picks a free port (logged as metrics_listening).
    address: str = "127.0.0.1:9376"

    def validate(self, where: str, prefix: str) -> None:
        from monitor.service.metrics import parse_address

        try:
            parse_address(self.address)
        except ValueError as exc:
            raise ConfigError(f"{where}: {prefix}.address: {exc}") from None


@dataclass
class DropAlertConfig:
    # Alert (CRITICAL, rule "ringwatch: events dropped") when records are lost.
    enabled: bool = True
    # At most one drop alert per this many seconds; drops meanwhile go into the next one.
    min_interval_s: float = 30.0
    # How often the drop counters are read, in seconds.
    check_interval_s: float = 1.0

    def validate(self, where: str, prefix: str) -> None:
        for name in ("min_interval_s", "check_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}: {prefix}.{name}: must be positive, got {getattr(self, name)}")


@dataclass
class EnforcementConfig:
    # Load the BPF LSM programs for deny/audit rules. Without BPF LSM in the kernel,
    # ringwatch runs monitor-only with a warning (or refuses: run --require-enforcement).
    enabled: bool = True
    # enforce: deny rules deny; audit: every deny rule only reports (per rule: action: audit).
    mode: str = "enforce"
    # The LSM programs (a hook on every open) load only when deny/audit rules exist at
    # start; true loads them anyway, so that a reload can add the first deny rule.
    always_load: bool = False

    def validate(self, where: str, prefix: str) -> None:
        if self.mode not in ("enforce", "audit"):
            raise ConfigError(f"{where}: {prefix}.mode: must be enforce or audit, got {self.mode!r}")


@dataclass
class Config:
    sensor: SensorConfig = field(default_factory=SensorConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    drop_alert: DropAlertConfig = field(default_factory=DropAlertConfig)
    enforcement: EnforcementConfig = field(default_factory=EnforcementConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    source: str = "<defaults>"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, key, where)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {type(value).__name__}")
        return [_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(v, val_tp, f"{key}.{k}", where) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Any:
        return value
    # bool is an int subclass; "yes" for an int is an error, not 1.
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: {key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    return value


def _build(cls: Any, data: dict[str, Any], prefix: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    for k in data:
        if k not in known:
            path = f"{prefix}.{k}" if prefix else str(k)
            raise ConfigError(f"{where}: {path}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {
        k: _convert(v, hints[k], f"{prefix}.{k}" if prefix else k, where) for k, v in data.items()
    }
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(where, prefix)
    return obj


def from_mapping(data: dict[str, Any] | None, where: str = "<config>") -> Config:
    cfg: Config = _build(Config, data or {}, "", where)
    cfg.source = where
    _check(cfg, where)
    return cfg


def _check(cfg: Config, where: str) -> None:
    s = cfg.sensor
    if s.ringbuf_bytes < 4096:
        raise ConfigError(f"{where}: sensor.ringbuf_bytes: must be at least 4096, got {s.ringbuf_bytes}")
    if s.process_ringbuf_bytes < 4096:
        raise ConfigError(
            f"{where}: sensor.process_ringbuf_bytes: must be at least 4096, got {s.process_ringbuf_bytes}"
        )
    if s.pending_exec_max < 1:
        raise ConfigError(f"{where}: sensor.pending_exec_max: must be positive")
    bounds = {
        "coalesce_window_ms": (0, 60_000), "coalesce_entries": (16, 1 << 20),
        "throttle_process_rate": (0, 10_000_000), "throttle_process_burst": (1, 100_000_000),
        "throttle_cgroup_rate": (0, 10_000_000), "throttle_cgroup_burst": (1, 100_000_000),
        "throttle_notice_interval_s": (1, 3600), "poll_timeout_ms": (1, 10_000),
        "wakeup_records": (1, 1 << 20),
    }
    for key, (lo, hi) in bounds.items():
        value = getattr(s, key)
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: sensor.{key}: must be {lo}..{hi}, got {value}")
    for i, t in enumerate(s.extra_event_types):
        if t != "all" and t not in ALL_EVENT_TYPES:
            raise ConfigError(
                f"{where}: sensor.extra_event_types[{i}]: unknown event type {t!r} "
                f"(known: all, {', '.join(sorted(ALL_EVENT_TYPES))})"
            )
    if len(s.cgroups) > 8:
        raise ConfigError(f"{where}: sensor.cgroups: at most 8 cgroups, got {len(s.cgroups)}")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`--set section.key=value` on top of the file; values are YAML (`4096`, `false`, `[a]`)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. sensor.ringbuf_bytes=4096")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: value is not valid YAML: {raw!r}") from exc
        node = data
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load(path: Path | None, overrides: Sequence[str] = (), allow_unsafe: bool = False) -> Config:
    """The config at `path`; the system config if it exists; else defaults; then --set.

    A config that non-root could have written is refused (see monitor.safefile) unless
    `allow_unsafe`: there is no config key for it, a file cannot vouch for itself.
    """
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            if overrides:
                return from_mapping(apply_overrides({}, overrides), "<defaults> + --set")
            return Config()
        path = DEFAULT_CONFIG_PATH
    if not allow_unsafe:
        safefile.check(path, "config")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read config: not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start})") from exc
    try:
        data = yaml.safe_load(text)
    except PARSE_FAILURES as exc:
        failure = describe(exc, text)
        raise ConfigError(f"{path}:{failure.line}:{failure.col}: invalid YAML: {failure.message}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    if overrides:
        return from_mapping(apply_overrides(data or {}, overrides), f"{path} + --set")
    return from_mapping(data, str(path))

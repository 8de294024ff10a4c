"""Prometheus metrics: the `ringwatch stats` snapshot, served over HTTP (metrics.enabled).

The HTTP server (prometheus_client's) answers on its own threads. They never touch the
daemon's objects (bcc tables, sinks, rules): the main loop publishes a finished stats
snapshot into a `SnapshotBox` every PUBLISH_INTERVAL_S, and a scrape converts the last
one. Map memory comes from bpftool and /proc (monitor.service.maps), read by the
scraping thread at most every MAPS_REFRESH_S, never by the main loop.

`families()` is a pure function of a snapshot; `unmapped` lists what it found no name
for, and such values are still exported, as `ringwatch_stats_value{path=...}`, so a
counter added to `ringwatch stats` can never silently miss the scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from monitor.service import maps
from monitor.version import version

# How often the main loop hands a fresh snapshot to the scraping threads. Building one
# reads kernel counters (per-CPU maps); once a second is plenty for a 15 s scrape.
PUBLISH_INTERVAL_S = 1.0
# bpftool runs at most this often, whatever the scrape rate.
MAPS_REFRESH_S = 30.0

Path = tuple[str, ...]

# Output stats that are levels, not counts: gauges (name, help).
_OUTPUT_GAUGES = {
    "queued": ("ringwatch_output_queued_records", "Records an output holds in memory now."),
    "spooled": ("ringwatch_output_spooled_records", "Records waiting in an output's disk spool now."),
    "spooled_bytes": ("ringwatch_output_spooled_bytes", "Bytes in an output's disk spool now."),
}
# Output stats that only grow: counters (name without _total, help).
_OUTPUT_COUNTERS = {
    "written": ("ringwatch_output_records_written", "Records an output delivered."),
    "errors": ("ringwatch_output_record_errors", "Records an output lost to a write error."),
    "dropped": ("ringwatch_output_records_dropped",
                "Records an output threw away (queue or spool full); includes queue_ and spool_dropped."),
    "queue_dropped": ("ringwatch_output_queue_dropped_records",
                      "Records dropped because the queue was full."),
    "spool_dropped": ("ringwatch_output_spool_dropped_records",
                      "Records dropped because the spool was full, since start."),
    "spool_dropped_total": ("ringwatch_output_spool_file_dropped_records",
                            "Records the spool file has refused over its lifetime (kept across restarts)."),
    "spooled_total": ("ringwatch_output_records_spooled", "Records that went to the disk spool."),
    "send_failures": ("ringwatch_output_send_failures", "Sends the broker did not acknowledge."),
    "reopened": ("ringwatch_output_reopens", "Times an output file was reopened (reload, rotation)."),
    "large": ("ringwatch_output_large_records", "Records sent to the journal through a memfd (too large)."),
}
# service.* counters (stats key -> name without _total, help).
_SERVICE_COUNTERS = {
    "notify_sent": ("ringwatch_notify_messages", "sd_notify messages sent."),
    "notify_errors": ("ringwatch_notify_errors", "sd_notify messages that failed."),
    "control_requests": ("ringwatch_control_requests", "Control socket requests answered."),
    "control_errors": ("ringwatch_control_errors", "Control socket requests that failed."),
    "reloads": ("ringwatch_reloads", "Reloads (SIGHUP) taken over."),
    "reload_errors": ("ringwatch_reload_errors", "Reloads rejected (previous settings kept)."),
}
_LINEAGE_LOOKUPS = {"cache_hits": "cache_hit", "kernel_hits": "kernel_hit", "missed": "miss"}


@dataclass
class Families:
    """Metric families built from one snapshot, and which snapshot paths they used."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    consumed: set[Path] = field(default_factory=set)
    unmapped: list[Path] = field(default_factory=list)

    def _family(self, kind: str, name: str, doc: str, labels: tuple[str, ...], /) -> Metric:
        fam = self.metrics.get(name)
        if fam is None:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fam = cls(name, doc, labels=list(labels))
            self.metrics[name] = fam
        return fam

    def add(self, kind: str, name: str, doc: str, value: Any, src: Path | None = None, /,
            **labels: str) -> None:
        """One sample; `src` is the snapshot path it reports (None: derived from several)."""
        if src is not None:
            self.consumed.add(src)
        fam = self._family(kind, name, doc, tuple(labels))
        fam.add_metric(list(labels.values()), float(value))  # type: ignore[attr-defined]

    def counter(self, name: str, doc: str, value: Any, src: Path | None = None, /, **labels: str) -> None:
        self.add("counter", name, doc, value, src, **labels)

    def gauge(self, name: str, doc: str, value: Any, src: Path | None = None, /, **labels: str) -> None:
        self.add("gauge", name, doc, value, src, **labels)

    def use(self, *paths: Path) -> None:
        """Values exported in another form (a sum the labelled series already give)."""
        self.consumed.update(paths)


def _num(v: Any) -> bool:
    return isinstance(v, int | float)  # bools too: flags export as 0/1


def numeric_leaves(snap: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, float]]:
    for key, value in snap.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            yield from numeric_leaves(value, path)
        elif _num(value):
            yield path, float(value)


def _section(snap: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = snap.get(key)
    return value if isinstance(value, Mapping) else {}


def families(snap: Mapping[str, Any]) -> Families:
    f = Families()
    f.use(("pid",))  # process_* metrics carry the process; the pid is not a measurement
    if "uptime_s" in snap:
        f.gauge("ringwatch_uptime_seconds", "Seconds since ringwatch started.", snap["uptime_s"],
                ("uptime_s",))
    for kind, n in _section(snap, "produced").items():
        f.counter("ringwatch_records_produced", "Records the kernel programs produced, by type.",
                  n, ("produced", kind), type=kind)
    for kind, n in _section(snap, "events").items():
        f.counter("ringwatch_events_delivered", "Records decoded and passed to the rules, by type.",
                  n, ("events", kind), type=kind)
    _alerts(f, _section(snap, "alerts"))
    _drops(f, _section(snap, "drops"))
    _ringbuf(f, _section(snap, "ringbuf"))
    _lanes(f, _section(snap, "lanes"))
    _flood(f, _section(snap, "flood"))
    _outputs(f, _section(snap, "outputs"))
    _service(f, _section(snap, "service"))
    kf = _section(snap, "kernel_filter")
    if "filtered_opens" in kf:
        f.counter("ringwatch_kernel_filtered_opens", "Opens dropped in the kernel: no rule could match them.",
                  kf["filtered_opens"], ("kernel_filter", "filtered_opens"))
    for rule, st in _section(snap, "rules").items():
        if not isinstance(st, Mapping):
            continue
        for key, name, doc in (("evaluated", "ringwatch_rule_evaluations", "Events a rule was evaluated on."),
                               ("matched", "ringwatch_rule_matches", "Events a rule matched."),
                               ("errors", "ringwatch_rule_errors", "Evaluations of a rule that failed.")):
            if key in st:
                f.counter(name, doc, st[key], ("rules", rule, key), rule=rule)
    _enforcement(f, _section(snap, "enforcement"))
    _lineage(f, _section(snap, "lineage"))
    _dns(f, _section(snap, "dns"))
    for path, value in numeric_leaves(snap):
        if path not in f.consumed:
            f.unmapped.append(path)
            f.gauge("ringwatch_stats_value", "A `ringwatch stats` value with no metric of its own.",
                    value, None, path=".".join(path))
    return f


def _alerts(f: Families, alerts: Mapping[str, Any]) -> None:
    f.use(("alerts", "total"), *[("alerts", "by_rule", r) for r in _section(alerts, "by_rule")],
          *[("alerts", "by_priority", p) for p in _section(alerts, "by_priority")])
    for rule, prios in _section(alerts, "by_rule_priority").items():
        for prio, n in prios.items():
            f.counter("ringwatch_alerts", "Alerts sent, by rule and priority.", n,
                      ("alerts", "by_rule_priority", rule, prio), rule=rule, priority=prio)


def _drops(f: Families, drops: Mapping[str, Any]) -> None:
    doc = ("Whole records lost, by reason: in the kernel, in decoding, or in an output "
           "(see ringwatch_output_records_dropped_total for which).")
    f.use(("drops", "records_lost"))
    for reason, n in _section(drops, "kernel").items():
        f.counter("ringwatch_records_lost", doc, n, ("drops", "kernel", reason), reason=reason)
    user = _section(drops, "userspace")
    if "decode_errors" in user:
        f.counter("ringwatch_records_lost", doc, user["decode_errors"],
                  ("drops", "userspace", "decode_errors"),
                  reason="decode_error")
    by_key: dict[str, float] = {}
    for key, n in user.items():
        if key.startswith("output."):
            last = key.rsplit(".", 1)[-1]
            by_key[last] = by_key.get(last, 0) + n
            f.use(("drops", "userspace", key))
    for last, reason in (("dropped", "output_dropped"), ("errors", "output_error")):
        f.counter("ringwatch_records_lost", doc, by_key.get(last, 0), None, reason=reason)
    for reason, n in _section(drops, "partial").items():
        f.counter("ringwatch_records_partial", "Records delivered with a field cut short or unreadable.",
                  n, ("drops", "partial", reason), reason=reason)


def _ringbuf(f: Families, rb: Mapping[str, Any]) -> None:
    for key, name, doc in (
        ("bytes", "ringwatch_ringbuf_size_bytes", "Size of the kernel ring buffer."),
        ("fill_bytes", "ringwatch_ringbuf_fill_bytes", "Bytes in the ring buffer not yet consumed."),
        ("fill_hwm_bytes", "ringwatch_ringbuf_fill_high_water_bytes",
         "Most bytes seen waiting in the ring buffer since start."),
    ):
        if key in rb:
            f.gauge(name, doc, rb[key], ("ringbuf", key))
    f.use(("ringbuf", "fill_hwm_pct"))  # high_water_bytes / size_bytes


# Per-lane record outcomes (process and syscall ring buffers): their sum is exact.
_LANE_OUTCOMES = ("produced", "delivered", "coalesced", "throttled", "lost")
_LANE_GAUGES = (
    ("unaccounted", "ringwatch_lane_records_in_flight", "Records produced and not yet accounted for."),
    ("bytes", "ringwatch_lane_ringbuf_size_bytes", "Size of a lane's ring buffer."),
    ("fill_bytes", "ringwatch_lane_ringbuf_fill_bytes", "Bytes in a lane's ring buffer not yet consumed."),
    ("fill_hwm_bytes", "ringwatch_lane_ringbuf_fill_high_water_bytes",
     "Most bytes seen waiting in a lane's ring buffer."),
)


def _lanes(f: Families, lanes: Mapping[str, Any]) -> None:
    for lane, st in lanes.items():
        if not isinstance(st, Mapping):
            continue
        for outcome in _LANE_OUTCOMES:
            if outcome in st:
                f.counter("ringwatch_lane_records", "Records of a lane, by outcome: produced == delivered "
                          "+ coalesced + throttled + lost (+ in flight).", st[outcome],
                          ("lanes", lane, outcome), lane=lane, outcome=outcome)
        for key, name, doc in _LANE_GAUGES:
            if key in st:
                f.gauge(name, doc, st[key], ("lanes", lane, key), lane=lane)


def _flood(f: Families, flood: Mapping[str, Any]) -> None:
    for key, value in flood.items():
        if key == "throttled_by":
            continue
        if _num(value):
            f.counter("ringwatch_flood_records", "Syscall records folded or refused under a flood, by kind.",
                      value, ("flood", key), kind=key)
    by = flood.get("throttled_by")
    if isinstance(by, Mapping):
        for who, n in by.items():
            if _num(n):
                f.counter("ringwatch_throttled_records", "Syscall records throttled, by process or cgroup.",
                          n, ("flood", "throttled_by", str(who)), source=str(who))
            elif isinstance(n, Mapping):
                for k, v in n.items():
                    if _num(v):
                        f.counter("ringwatch_throttled_records", "Syscall records throttled, by process "
                                  "or cgroup.", v, ("flood", "throttled_by", str(who), str(k)),
                                  source=f"{who}:{k}")


def _outputs(f: Families, outputs: Mapping[str, Any]) -> None:
    for out, st in outputs.items():
        if not isinstance(st, Mapping):
            continue
        for key, n in st.items():
            path = ("outputs", out, key)
            if key in _OUTPUT_GAUGES:
                name, doc = _OUTPUT_GAUGES[key]
                f.gauge(name, doc, n, path, output=out)
            elif key in _OUTPUT_COUNTERS:
                name, doc = _OUTPUT_COUNTERS[key]
                f.counter(name, doc, n, path, output=out)


def _service(f: Families, svc: Mapping[str, Any]) -> None:
    for key, (name, doc) in _SERVICE_COUNTERS.items():
        if key in svc:
            f.counter(name, doc, svc[key], ("service", key))
    if "notify_socket" in svc:
        f.gauge("ringwatch_notify_enabled", "1 when running under systemd's notify socket.",
                svc["notify_socket"], ("service", "notify_socket"))
    if "control_error" in svc:
        f.gauge("ringwatch_control_socket_up", "1 when the control socket is open.",
                0 if svc["control_error"] else 1)
    da = _section(svc, "drop_alert")
    if "alerts" in da:
        f.counter("ringwatch_drop_alerts", "Drop alerts sent.", da["alerts"],
                  ("service", "drop_alert", "alerts"))
    if "suppressed_checks" in da:
        f.counter("ringwatch_drop_alert_suppressed_checks",
                  "Drop checks that found losses but held the alert back (drop_alert.min_interval_s).",
                  da["suppressed_checks"], ("service", "drop_alert", "suppressed_checks"))
    f.use(("service", "drop_alert", "min_interval_s"))  # configuration, not a measurement
    tail = _section(svc, "tail")
    if "clients" in tail:
        f.gauge("ringwatch_tail_clients", "`ringwatch tail` clients attached now.", tail["clients"],
                ("service", "tail", "clients"))
    for key, name, doc in (
        ("attached", "ringwatch_tail_attached", "`ringwatch tail` clients ever attached."),
        ("refused", "ringwatch_tail_refused", "`ringwatch tail` requests refused (bad filter, too many)."),
        ("sent", "ringwatch_tail_records_sent", "Records sent to `ringwatch tail` clients."),
        ("dropped", "ringwatch_tail_records_dropped", "Records dropped: a tail client read too slowly."),
    ):
        if key in tail:
            f.counter(name, doc, tail[key], ("service", "tail", key))


def _enforcement(f: Families, enf: Mapping[str, Any]) -> None:
    if not enf:
        return
    if "active" in enf:
        f.gauge("ringwatch_enforcement_active", "1 when the BPF LSM programs are attached.",
                enf["active"], ("enforcement", "active"))
    if "rules" in enf:
        f.gauge("ringwatch_enforcement_rules", "Deny and audit rules in the kernel.", enf["rules"],
                ("enforcement", "rules"))
    for key in ("exec_keys", "open_keys", "v4_keys", "v6_keys"):
        if key in enf:
            f.gauge("ringwatch_enforcement_keys", "Keys in the kernel's deny maps, by map.", enf[key],
                    ("enforcement", key), map=key.removesuffix("_keys"))
    if "exceptions" in enf:
        f.gauge("ringwatch_enforcement_exceptions", "Exceptions in the kernel's deny maps.",
                enf["exceptions"], ("enforcement", "exceptions"))
    for key, n in _section(enf, "kernel").items():
        f.counter("ringwatch_enforcement_decisions", "LSM hook outcomes in the kernel, by kind.", n,
                  ("enforcement", "kernel", key), outcome=key)


def _dns(f: Families, dns: Mapping[str, Any]) -> None:
    """fd.sip.name: the names rules compare it with, resolved in the background."""
    if "names" in dns:
        f.gauge("ringwatch_dns_names", "Host names the rules compare fd.sip.name with.", dns["names"],
                ("dns", "names"))
    if "resolved" in dns:
        f.gauge("ringwatch_dns_names_resolved", "Of those, names whose last resolution gave addresses.",
                dns["resolved"], ("dns", "resolved"))
    if "resolutions" in dns:
        f.counter("ringwatch_dns_resolutions", "Resolutions of those names made so far.",
                  dns["resolutions"], ("dns", "resolutions"))


def _lineage(f: Families, lin: Mapping[str, Any]) -> None:
    if not lin:
        return
    for key, name, doc in (
        ("entries", "ringwatch_lineage_entries", "Processes in the kernel lineage map."),
        ("max_entries", "ringwatch_lineage_max_entries", "Size of the kernel lineage map."),
        ("cache_entries", "ringwatch_lineage_cache_entries", "Processes in userspace's lineage cache."),
    ):
        if key in lin:
            f.gauge(name, doc, lin[key], ("lineage", key))
    f.use(("lineage", "utilisation_pct"))  # entries / max_entries
    for key, name, doc in (
        ("evicted", "ringwatch_lineage_evictions", "Lineage map entries evicted while full (LRU)."),
        ("backfilled", "ringwatch_lineage_backfilled", "Processes added from /proc at start."),
        ("cache_invalidations", "ringwatch_lineage_cache_invalidations", "Lineage cache entries dropped."),
    ):
        if key in lin:
            f.counter(name, doc, lin[key], ("lineage", key))
    for key, n in _section(lin, "lookups").items():
        f.counter("ringwatch_lineage_lookups", "Lineage lookups by result (cache_hit, kernel_hit, miss).",
                  n, ("lineage", "lookups", key), result=_LINEAGE_LOOKUPS.get(key, key))
    for key, n in _section(lin, "kernel").items():
        if key == "inserts":
            f.counter("ringwatch_lineage_inserts", "Processes the kernel added to the lineage map.", n,
                      ("lineage", "kernel", key))
        else:
            f.counter("ringwatch_lineage_kernel_misses",
                      "Kernel lineage updates that found no entry, by kind.", n,
                      ("lineage", "kernel", key), kind=key.removesuffix("_missing"))


def map_families(rep: maps.MapsReport) -> list[Metric]:
    memlock = GaugeMetricFamily("ringwatch_bpf_map_memlock_bytes",
                                "Locked memory of each BPF map ringwatch holds.",
                                labels=["map", "type", "id"])
    size = GaugeMetricFamily("ringwatch_bpf_map_max_entries", "Capacity of each BPF map ringwatch holds.",
                             labels=["map", "type", "id"])
    for m in rep.maps:
        labels = [m.name, m.type, str(m.id)]
        memlock.add_metric(labels, m.memlock_bytes)
        size.add_metric(labels, m.max_entries)
    total = GaugeMetricFamily("ringwatch_bpf_memlock_bytes", "Locked memory of all BPF maps ringwatch holds.",
                              value=rep.memlock_total)
    return [memlock, size, total]


class SnapshotBox:
    """The last snapshot the main loop published; read by any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: dict[str, Any] | None = None
        self._at = 0.0

    def publish(self, snap: dict[str, Any]) -> None:
        with self._lock:
            self._snap, self._at = snap, time.monotonic()

    def latest(self) -> tuple[dict[str, Any] | None, float]:
        """The snapshot and its age in seconds (None before the first)."""
        with self._lock:
            return self._snap, time.monotonic() - self._at


class MapsCache:
    """maps.report() at most every MAPS_REFRESH_S; it runs bpftool."""

    def __init__(self, report: Callable[[], maps.MapsReport], refresh_s: float = MAPS_REFRESH_S) -> None:
        self._report = report
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._last: maps.MapsReport | None = None
        self._at: float | None = None
        self.errors = 0
        self.error = ""

    def get(self) -> maps.MapsReport | None:
        with self._lock:
            now = time.monotonic()
            if self._at is None or now - self._at >= self._refresh_s:
                self._at = now
                try:
                    self._last = self._report()
                    self.error = ""
                except (maps.MapsError, OSError) as exc:
                    self.errors += 1
                    self.error = str(exc)
            return self._last


class RingwatchCollector(Collector):
    def __init__(self, box: SnapshotBox, maps_cache: MapsCache | None) -> None:
        self.box = box
        self.maps = maps_cache

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("ringwatch_build_info", "ringwatch's version; always 1.", labels=["version"])
        info.add_metric([version()], 1)
        yield info
        snap, age = self.box.latest()
        if snap is None:
            return
        yield GaugeMetricFamily("ringwatch_stats_age_seconds",
                                "Age of the snapshot this scrape reports.", value=age)
        yield from families(snap).metrics.values()
        if self.maps is not None:
            rep = self.maps.get()
            if rep is not None:
                yield from map_families(rep)
            yield CounterMetricFamily("ringwatch_bpf_maps_read_errors",
                                      "Failed reads of the BPF map list (bpftool).", value=self.maps.errors)


def parse_address(address: str) -> tuple[str, int]:
    """host:port or [v6]:port; ValueError with the reason otherwise."""
    host, sep, port_s = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, e.g. 127.0.0.1:9376, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_s!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port}")
    return host, port


class MetricsServer:
    """The HTTP endpoint; `publish()` from the main loop, everything else runs on its threads."""

    def __init__(self, address: str, maps_report: Callable[[], maps.MapsReport] | None) -> None:
        self.address = address
        self.box = SnapshotBox()
        self.registry = CollectorRegistry()
        self.registry.register(RingwatchCollector(self.box, MapsCache(maps_report) if maps_report else None))
        self._httpd: Any = None
        self._next_publish = 0.0

    def start(self) -> str:
        """Bind and serve; returns the address bound (port 0 picks a free one). OSError if not."""
        from prometheus_client import ProcessCollector, start_http_server

        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory, fds
        host, port = parse_address(self.address)
        self._httpd, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._httpd.server_address
        return f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"

    def due(self, now: float) -> bool:
        if now < self._next_publish:
            return False
        self._next_publish = now + PUBLISH_INTERVAL_S
        return True

    def publish(self, snap: dict[str, Any]) -> None:
        self.box.publish(snap)

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

"""Enforcement as the daemon sees it: a sensor Extension plus the deny rules in force.

Lifecycle: the daemon translates the deny/audit rules (load-time errors stop it before
anything is attached), hands the Enforcer to the Sensor, which compiles bpf/lsm.bpf.c
into the same BPF object; `loaded` fills the maps, `refused` decides between
monitor-only with a warning and refusing to start. On reload `apply` refills the maps.
Every enforcement record becomes an alert with action deny or audit.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import paths
from monitor.enforce.kmaps import KernelMaps
from monitor.enforce.plan import MapPlan, build
from monitor.enforce.spec import DenySpec
from monitor.errors import UserError
from monitor.kernel.records import DenyRecord
from monitor.rules.alert import Alert

# Found like every packaged file (monitor.paths): a checkout, an editable install or the venv.
LSM_SOURCE = paths.bpf_dir() / "lsm.bpf.c"
LSM_LIST = Path("/sys/kernel/security/lsm")


class EnforcementUnavailable(UserError):
    """--require-enforcement on a kernel that will not load the LSM programs."""


class NotLoaded(UserError):
    """Deny rules added by a reload when the LSM programs were not loaded at start."""


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What an alert needs from the rule beyond its kernel checks."""

    priority: str = "CRITICAL"
    tags: tuple[str, ...] = ()
    output: Callable[[dict[str, Any]], str] | None = None


def kernel_lsms() -> str:
    try:
        return LSM_LIST.read_text().strip()
    except OSError as exc:
        return f"unknown ({LSM_LIST}: {exc.strerror})"


class Enforcer:
    def __init__(self, *, require: bool, warn: Callable[..., Any], info: Callable[..., Any],
                 host: str | None = None, source_path: Path = LSM_SOURCE) -> None:
        self.require = require
        self._warn = warn
        self._info = info
        self.host = host or socket.gethostname()
        self.source_path = source_path
        self.active = False
        self.skipped = False
        self.unavailable_reason = ""
        self._maps: KernelMaps | None = None
        self._specs: list[tuple[int, DenySpec]] = []
        self._meta: dict[int, RuleMeta] = {}
        # Every id ever issued, so a record decided just before a reload still names its rule.
        self._names: dict[int, str] = {}
        self._next_id = 1
        self.plan = MapPlan()

    # --- sensor Extension -------------------------------------------------------------
    def source(self) -> str:
        return self.source_path.read_text()

    def loaded(self, bpf: Any) -> None:
        self._maps = KernelMaps(bpf)
        self._maps.apply(self.plan)
        self.active = True
        self._info("enforcement_attached", lsm=kernel_lsms(), **self.plan.summary())

    def refused(self, exc: Exception) -> None:
        # bcc says "Need super-user privileges" for any EPERM, which is what a kernel
        # that blocks BPF trampolines (or lacks bpf in its LSM list) answers.
        reason = (f"BPF LSM programs did not load ({exc}); kernel LSMs: {kernel_lsms()}")
        self.unavailable_reason = reason
        if self.require:
            raise EnforcementUnavailable(f"enforcement required but unavailable: {reason}")
        self._warn("enforcement_unavailable", detail=f"{reason}; running monitor-only: deny and "
                   "audit rules are neither enforced nor reported")

    def wanted(self, always_load: bool) -> bool:
        """Whether to load the programs: each hook costs every exec, open and connect."""
        return bool(self._specs) or self.require or always_load

    def skip(self) -> None:
        self.skipped = True
        self._info("enforcement_not_loaded", reason="no deny or audit rules at start")

    # --- rules --------------------------------------------------------------------------
    def apply(self, specs: list[DenySpec], meta: dict[str, RuleMeta] | None = None) -> MapPlan:
        """Put exactly these rules in force (before or after the programs load).

        An unchanged rule keeps its id and entries, so it stays in force throughout; a
        plan that does not fit the maps raises PlanError and leaves the maps as they were.
        """
        if specs and self.skipped:
            raise NotLoaded("deny/audit rules added, but the LSM programs load at start only when "
                            "such rules exist: restart ringwatch (or set enforcement.always_load: true)")
        old = {spec: rid for rid, spec in self._specs}
        numbered: list[tuple[int, DenySpec]] = []
        next_id = self._next_id
        for spec in specs:
            rid = old.pop(spec, None)
            if rid is None:
                rid, next_id = next_id, next_id + 1
            numbered.append((rid, spec))
        plan = build(numbered)
        if self._maps is not None:
            self._maps.apply(plan)
        self._next_id = next_id
        self._specs = numbered
        self.plan = plan
        self._names.update(plan.names)
        meta = meta or {}
        self._meta = {rid: meta.get(spec.rule, RuleMeta()) for rid, spec in numbered}
        return plan

    def rule_name(self, rule_id: int) -> str:
        return self._names.get(rule_id, f"<unknown deny rule {rule_id}>")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"active": self.active, **self.plan.summary()}
        if self._maps is not None:
            out["kernel"] = self._maps.stats()
        if self.unavailable_reason:
            out["unavailable"] = self.unavailable_reason
        return out

    def kernel_maps(self) -> KernelMaps | None:
        return self._maps

    # --- records -> alerts ---------------------------------------------------------------
    def alert(self, rec: DenyRecord, event: dict[str, Any]) -> dict[str, Any]:
        meta = self._meta.get(rec.rule_id, RuleMeta())
        name = self.rule_name(rec.rule_id)
        action = event.get("enforce.action", "deny")
        if meta.output is not None:
            output = meta.output(event)
        else:
            output = f"{action} {event.get('enforce.op')} {event.get('fd.name')} by " \
                     f"{event.get('proc.name')} (pid {event.get('proc.pid')})"
        return Alert.build(
            rule=name, priority=meta.priority, tags=list(meta.tags), action=str(action),
            output=output, output_fields={}, event=event, host=self.host,
        ).to_dict()

"""Pipeline stage 3, enrich: what the record does not carry but the host knows (users, containers,
the addresses of the names rules compare fd.sip.name with)."""

from __future__ import annotations

import pwd

from monitor.events.catalog import FIELD_TYPES
from monitor.events.container import ContainerResolver
from monitor.events.dns import FIELD as SIP_NAME
from monitor.events.dns import DnsWatch
from monitor.stage import Item

USER_CACHE_MAX = 4096
# Filled when a rule reads one of them, or the whole event is wanted (Item.complete()).
USER = frozenset({"user.name"})
CONTAINER = frozenset(f for f in FIELD_TYPES if f.startswith(("container.", "k8s.")))


class Enrich:
    name = "enrich"

    def __init__(self, containers: ContainerResolver | None = None, dns: DnsWatch | None = None) -> None:
        self._users: dict[int, str] = {}
        self.containers = containers or ContainerResolver()
        self.dns = dns or DnsWatch()

    def user_name(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = ""
            if len(self._users) >= USER_CACHE_MAX:
                self._users.clear()
            self._users[uid] = name
        return name

    def __call__(self, item: Item) -> None:
        ev = item.event
        item.fill(USER, self._user)
        sip = ev.get("fd.sip")
        if sip is not None:
            # A lookup in the last answer the background resolver published; no DNS here.
            ev[SIP_NAME] = self.dns.names_for(sip)
        item.fill(CONTAINER, self._container)

    def _user(self, item: Item) -> None:
        uid = item.event.get("user.uid")
        if uid is not None:
            item.event["user.name"] = self.user_name(uid)

    def _container(self, item: Item) -> None:
        ev = item.event
        pid = ev.get("proc.pid")
        if pid is not None:
            # The v1 cgroup of this record (exec, fork), else of the process's last fork or exec.
            proc = item.proc
            cgroup1 = ev.get("cgroup.v1_id") or (proc.cgroup1_id if proc is not None else 0)
            ev.update(self.containers.fields(pid, ev.get("proc.start_ns", 0), ev.get("proc.exec_id", ""),
                                             ev.get("cgroup.id", 0), cgroup1))

"""Pipeline stage 3, enrich: what the record does not carry but the host knows (users, containers,
the addresses of the names rules compare fd.sip.name with)."""

from __future__ import annotations

import pwd

from monitor.events.container import ContainerResolver
from monitor.events.dns import FIELD as SIP_NAME
from monitor.events.dns import DnsWatch
from monitor.stage import Item

USER_CACHE_MAX = 4096


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
        uid = ev.get("user.uid")
        if uid is not None:
            ev["user.name"] = self.user_name(uid)
        sip = ev.get("fd.sip")
        if sip is not None:
            # A lookup in the last answer the background resolver published; no DNS here.
            ev[SIP_NAME] = self.dns.names_for(sip)
        pid = ev.get("proc.pid")
        if pid is not None:
            ev.update(self.containers.fields(pid, ev.get("proc.start_ns", 0), ev.get("proc.exec_id", ""),
                                             ev.get("cgroup.id", 0)))

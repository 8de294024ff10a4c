"""Pipeline stage 3, enrich: what the record does not carry but the host knows (users, containers)."""

from __future__ import annotations

import pwd

from monitor.events.container import ContainerResolver
from monitor.stage import Item

USER_CACHE_MAX = 4096


class Enrich:
    name = "enrich"

    def __init__(self, containers: ContainerResolver | None = None) -> None:
        self._users: dict[int, str] = {}
        self.containers = containers or ContainerResolver()

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
        pid = ev.get("proc.pid")
        if pid is not None:
            ev.update(self.containers.fields(pid, ev.get("proc.start_ns", 0), ev.get("proc.exec_id", ""),
                                             ev.get("cgroup.id", 0)))

"""Pipeline stage 3, enrich: what the record does not carry but the host knows (user names)."""

from __future__ import annotations

import pwd

from monitor.stage import Item

USER_CACHE_MAX = 4096


class Enrich:
    name = "enrich"

    def __init__(self) -> None:
        self._users: dict[int, str] = {}

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

"""The logic beside the kernel-read Falco fields: rendering, decoding, DNS watching, lowering.

The kernel side is tests/test_falco_fields_kernel.py; these pin what can be checked
without it: Falco's capability rendering, the transport names, the kernel's socket ends
winning over the caller's sockaddr, the background resolver's schedule, which names the
rules make it watch, and how Falco's address checks lower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.events.creds import CAPABILITIES, caps_fields, caps_text
from monitor.events.decode import Decode
from monitor.events.dns import DnsWatch
from monitor.events.enrich import Enrich
from monitor.kernel.records import Caps, Header, RecordType, SockInfo, SyscallRecord
from monitor.netaddr import addr_hex, is_hostname
from monitor.rules.ruleset import RuleSet
from monitor.stage import Item
from tests.rules_util import load_text, problems_of

CAP_SYS_ADMIN, CAP_SYS_MODULE = 21, 16


def test_caps_render_as_falco_does() -> None:
    assert caps_text(0) == ""
    assert caps_text(0b11) == "CAP_CHOWN CAP_DAC_OVERRIDE"
    assert caps_text(1 << CAP_SYS_ADMIN) == "CAP_SYS_ADMIN"
    everything = caps_text((1 << 41) - 1)
    assert everything.split() == list(CAPABILITIES) and everything.endswith("CAP_CHECKPOINT_RESTORE")
    assert caps_text(1 << 50) == ""  # a capability libsinsp has no name for is left out
    ev = caps_fields(Caps(1 << CAP_SYS_MODULE, 1 << CAP_SYS_ADMIN, 0))
    assert ev == {"thread.cap_effective": "CAP_SYS_MODULE", "thread.cap_permitted": "CAP_SYS_ADMIN",
                  "thread.cap_inheritable": ""}


def _connect(ret: int, sockaddr: bytes, sock: SockInfo | None, port: int = 443) -> dict[str, Any]:
    h = Header(RecordType.SYSCALL, 0, 1, 100, 100, 1, 0, 0, 1, 1, "ssh")
    rec = SyscallRecord(h, 42, ret, (3, 0, 16, 0, 0, 0), 0, 2, port, sockaddr + bytes(12), "", "", "",
                        caps=Caps(0, 0, 0), sock=sock)
    return Decode().event(rec)


def test_connect_takes_the_kernels_peer_once_connected() -> None:
    # The caller's sockaddr memory says 10.0.0.1:443 by sys_exit; the kernel connected to
    # 198.51.100.7:4444 from 192.0.2.2:40000.
    sock = SockInfo(2, 1, 6, bytes([192, 0, 2, 2]), 40000, bytes([198, 51, 100, 7]), 4444)
    ev = _connect(-115, bytes([10, 0, 0, 1]), sock)
    assert (ev["fd.sip"], ev["fd.sport"], ev["fd.rip"], ev["fd.name"]) == (
        "198.51.100.7", 4444, "198.51.100.7", "198.51.100.7:4444")
    assert (ev["fd.cip"], ev["fd.cport"], ev["fd.lport"]) == ("192.0.2.2", 40000, 40000)
    assert (ev["fd.connected"], ev["fd.name_changed"], ev["fd.l4proto"]) == (True, True, "tcp")
    assert ev["fd.sip.hex"] == "00000000000000000000ffffc6336407"
    # A failed connect connected nothing: what was asked is what there is to report.
    failed = _connect(-111, bytes([10, 0, 0, 1]), SockInfo(2, 1, 6, bytes(4), 0, bytes(4), 0))
    assert (failed["fd.sip"], failed["fd.connected"]) == ("10.0.0.1", False)
    assert "fd.cip" not in failed


@pytest.mark.parametrize(("family", "type_", "proto", "want"), [
    (2, 1, 6, "tcp"), (10, 2, 17, "udp"), (2, 2, 1, "icmp"), (10, 2, 58, "icmp"),
    (2, 3, 1, "raw"), (2, 3, 6, "raw"), (10, 3, 255, "raw"), (2, 2, 136, None), (1, 1, 0, None),
])
def test_l4proto_names(family: int, type_: int, proto: int, want: str | None) -> None:
    n = 4 if family == 2 else 16
    ev = _connect(0, bytes(4), SockInfo(family, type_, proto, bytes(n), 0, bytes(n), 0))
    assert ev.get("fd.l4proto") == want


def test_addr_hex_orders_as_numbers() -> None:
    assert addr_hex("10.0.0.1") == "00000000000000000000ffff0a000001"
    assert addr_hex("::1") == "0" * 31 + "1"
    keys = [addr_hex(a) for a in ("9.255.255.255", "10.0.0.0", "10.255.255.255", "11.0.0.0")]
    assert keys == sorted(keys)


class FakeResolver:
    def __init__(self, answers: dict[str, frozenset[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, name: str) -> frozenset[str]:
        self.asked.append(name)
        return self.answers.get(name, frozenset())


def test_dns_watch_resolves_publishes_and_backs_off() -> None:
    res = FakeResolver({"k8s.local": frozenset({"10.96.0.1"}), "api.local": frozenset({"10.96.0.1", "::1"})})
    w = DnsWatch(res, base_s=10, max_s=40)
    w._names = frozenset({"k8s.local", "api.local", "gone.invalid"})  # watch() without the thread
    assert w.names_for("10.96.0.1") == []  # nothing before the first answer
    assert w.refresh_once(0) == 10
    assert w.names_for("10.96.0.1") == ["api.local", "k8s.local"] and w.names_for("::1") == ["api.local"]
    assert w.names_for("10.96.0.2") == [] and w.stats() == {"names": 3, "resolved": 2, "resolutions": 3}
    res.asked.clear()
    w.refresh_once(5)  # nothing due
    assert res.asked == []
    assert w.refresh_once(10) == 20  # same answers: the interval doubles
    w.refresh_once(30)
    assert w.refresh_once(70) == 40  # capped
    res.answers["k8s.local"] = frozenset({"10.96.0.9"})  # changed: published, interval reset
    assert w.refresh_once(110) == 10
    assert w.names_for("10.96.0.9") == ["k8s.local"] and w.names_for("10.96.0.1") == ["api.local"]
    w._names = frozenset({"api.local"})  # a reload dropped the others
    w.refresh_once(200)
    assert w.names_for("10.96.0.9") == []


def test_only_host_names_are_watched() -> None:
    assert is_hostname("kubernetes.default.svc.cluster.local") and is_hostname("localhost")
    assert not any(map(is_hostname, ["", "a b", "^kube.*", "a..b", "x/y", "-x"]))
    w = DnsWatch(FakeResolver({}))
    w.watch(["^re(gex)$", "two words"])
    assert w.stats()["names"] == 0 and w._thread is None  # no thread for nothing to resolve


def _rules(tmp_path: Path, text: str) -> RuleSet:
    return load_text(tmp_path, text)


FALCO_RULES = """- ringwatch: {syntax: falco}
- list: api_names
  items: [api.example, "b.example"]
- rule: eq
  desc: d
  condition: evt.type=connect and fd.sip.name=k8s.example
  output: o
  priority: NOTICE
- rule: in_list
  desc: d
  condition: evt.type=connect and fd.sip.name in (api_names) and fd.sip.name != skip.example
  output: o
  priority: NOTICE
- rule: nets
  desc: d
  condition: evt.type=connect and fd.net != "127.0.0.0/8" and fd.snet in ("10.0.0.0/8", "fd00::/8")
    and fd.ip != "0.0.0.0"
  output: o
  priority: NOTICE
"""


def test_rules_name_the_watched_names_in_either_syntax(tmp_path: Path) -> None:
    rs = _rules(tmp_path, FALCO_RULES)
    assert rs.dns_names() == {"k8s.example", "api.example", "b.example", "skip.example"}
    own = _rules(tmp_path, '- rule: r\n  desc: d\n  condition: \'evt.type == "connect" and "a.example" in '
                           'fd.sip.name\'\n  output: o\n  priority: NOTICE\n')
    assert own.dns_names() == {"a.example"}


def _judge(rs: RuleSet, ev: dict[str, Any]) -> set[str]:
    return {r.name for r in rs.rules if r.matches(ev) and (r.engine_matches is None or r.engine_matches(ev))}


def test_sip_name_and_address_checks_mean_what_falco_means(tmp_path: Path) -> None:
    rs = _rules(tmp_path, FALCO_RULES)
    base = {"evt.type": "connect", "fd.sip": "10.1.2.3", "fd.sip.hex": addr_hex("10.1.2.3"),
            "fd.cip.hex": addr_hex("192.0.2.2")}
    assert _judge(rs, {**base, "fd.sip.name": ["k8s.example"]}) == {"eq", "nets"}
    assert _judge(rs, {**base, "fd.sip.name": ["b.example"]}) == {"in_list", "nets"}
    # != is "none of its addresses", not "some other name".
    assert _judge(rs, {**base, "fd.sip.name": ["b.example", "skip.example"]}) == {"nets"}
    assert _judge(rs, {**base, "fd.sip.name": []}) == {"nets"}
    v6 = {**base, "fd.sip.hex": addr_hex("fd00::5"), "fd.sip.name": []}
    assert _judge(rs, v6) == {"nets"}
    # fd.net != holds only when neither end is in the network: a loopback client fails it.
    assert _judge(rs, {**base, "fd.cip.hex": addr_hex("127.0.0.1"), "fd.sip.name": []}) == set()
    assert _judge(rs, {**base, "fd.sip.hex": addr_hex("11.0.0.1"), "fd.sip.name": []}) == set()
    # Not a connect with addresses (no fd.sip): nothing holds, != included.
    assert _judge(rs, {"evt.type": "connect"}) == set()


def test_address_checks_refuse_what_falco_refuses(tmp_path: Path) -> None:
    head = "- ringwatch: {syntax: falco}\n"
    rule = "- rule: r\n  desc: d\n  condition: evt.type=connect and {}\n  output: o\n  priority: NOTICE\n"
    msgs = [str(p) for p in problems_of(tmp_path, head + rule.format("fd.sip.name contains kube"))]
    assert msgs[0].endswith("fd.sip.name supports only =, != and in (as in Falco), not 'contains'")
    msgs = [str(p) for p in problems_of(tmp_path, head + rule.format('fd.snet = "10.0.0.300/8"'))]
    assert msgs[0].endswith("fd.snet needs a network (a.b.c.d/n), got '10.0.0.300/8'")


def test_enrich_sets_sip_name_from_the_published_answer() -> None:
    w = DnsWatch(FakeResolver({"localhost": frozenset({"127.0.0.1"})}))
    w._names = frozenset({"localhost"})
    w.refresh_once(0)
    enrich = Enrich(dns=w)
    item = Item(None)  # type: ignore[arg-type]
    item.event = {"evt.type": "connect", "fd.sip": "127.0.0.1"}
    enrich(item)
    assert item.event["fd.sip.name"] == ["localhost"]
    item.event = {"evt.type": "openat"}
    enrich(item)
    assert "fd.sip.name" not in item.event


def test_the_new_fields_are_in_the_catalogue() -> None:
    from monitor.events.catalog import describe

    table = {f["name"]: f for f in describe()}
    for name in ("thread.cap_effective", "thread.cap_permitted", "thread.cap_inheritable", "fd.l4proto",
                 "proc.is_exe_upper_layer", "proc.is_exe_lower_layer", "fd.sip.name", "fd.connected",
                 "fd.name_changed", "fd.cip", "fd.cport", "fd.lip", "fd.lport", "fd.sip.hex", "fd.cip.hex",
                 "k8s.ns.name"):
        assert name in table and table[name]["desc"], name
    assert table["fd.l4proto"]["events"] == ["connect", "socket", "dup"]
    assert table["proc.is_exe_upper_layer"]["events"] == ["exec"]
    assert table["fd.sip.name"]["type"] == "list"

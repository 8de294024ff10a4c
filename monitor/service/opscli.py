"""`ringwatch stats`, `maps` and `reload`: ask a running daemon over its control socket."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from monitor import config
from monitor.errors import ConfigError, UserError
from monitor.service import control, maps, stats

# How often `ringwatch reload` asks whether the daemon has finished the reload.
RELOAD_POLL_S = 0.1


def _socket(args: argparse.Namespace) -> Path:
    """--control-socket, else control.socket from --config (or the system config)."""
    if args.control_socket is not None:
        return Path(args.control_socket)
    return Path(config.load(args.config).control.socket)


def _cmd_stats(args: argparse.Namespace) -> int:
    snap = control.request(_socket(args), "stats")
    print(json.dumps(snap, indent=2) if args.json else stats.render_text(snap))
    return 0


def _cmd_maps(args: argparse.Namespace) -> int:
    info: dict[str, Any] = control.request(_socket(args), "info")
    pin_dir = args.pin_dir or str(info.get("pin_dir", ""))
    rep = maps.report(int(info["pid"]), pin_dir, bpftool=args.bpftool)
    print(json.dumps(rep.to_dict(), indent=2) if args.json else maps.render_text(rep))
    return 0


class ReloadFailed(UserError):
    """The daemon rejected the new rules or config (it keeps running on the old ones)."""

    exit_code = 1


def _reload_socket(args: argparse.Namespace) -> Path:
    # The file being reloaded may be the broken one: the daemon still has to hear the
    # SIGHUP (to log and count the failure), so fall back to the default socket.
    try:
        return _socket(args)
    except ConfigError:
        return control.DEFAULT_SOCKET


def _hup(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise ReloadFailed(f"cannot signal pid {pid}: {exc.strerror}") from exc


def _reload_count(sock: Path) -> tuple[int, int, str]:
    svc = control.request(sock, "stats")["service"]
    return int(svc["reloads"]), int(svc["reload_errors"]), str(svc.get("last_reload_error", ""))


def _cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP the daemon and wait for its verdict: exit 1 when it rejected the reload.

    The unit's ExecReload=, so `systemctl reload` fails (and systemd logs "Reload failed")
    instead of reporting a rejected rules file as "Reloaded"."""
    sock = _reload_socket(args)
    try:
        reloads, errors, _ = _reload_count(sock)
    except control.ControlError as exc:
        if args.pid is None:
            raise
        # No socket to hear the verdict on: the reload still happens, but unconfirmed.
        _hup(args.pid)
        raise ReloadFailed(f"sent SIGHUP to pid {args.pid}, but cannot learn the result: {exc}") from exc
    pid = args.pid if args.pid is not None else int(control.request(sock, "info")["pid"])
    _hup(pid)
    deadline = time.monotonic() + args.timeout
    while True:
        now_reloads, now_errors, why = _reload_count(sock)
        if now_errors > errors:
            raise ReloadFailed(f"reload failed (previous settings kept): {why}")
        if now_reloads > reloads:
            print("reloaded", file=sys.stderr)
            return 0
        if time.monotonic() >= deadline:
            raise ReloadFailed(f"pid {pid} did not finish reloading within {args.timeout:g} s")
        time.sleep(RELOAD_POLL_S)


class StreamEnded(UserError):
    """The daemon closed the tail stream (it stopped, or cut off a client that fell behind)."""

    exit_code = 1


def _tail_filter(args: argparse.Namespace) -> dict[str, Any]:
    types = sorted({t.strip() for spec in args.type or [] for t in spec.split(",") if t.strip()})
    return {"rules": list(args.rule or []), "priority": args.priority, "events": bool(args.events or types),
            "types": types, "pid": args.pid, "exe": args.exe}


def _cmd_tail(args: argparse.Namespace) -> int:
    """Print the daemon's alerts (and events) as they happen, until Ctrl-C or --count."""
    from monitor.sinks.base import dumps
    from monitor.sinks.textfmt import default_format, line

    fmt = args.output or default_format(sys.stdout.isatty())
    sock = control.connect(_socket(args), timeout=10.0)
    with sock:
        sock.sendall(b"tail " + json.dumps(_tail_filter(args)).encode() + b"\n")
        reader = sock.makefile("rb")
        first = reader.readline()
        try:
            reply = json.loads(first)
        except json.JSONDecodeError as exc:
            raise control.ControlError(f"tail: malformed reply {first[:80]!r}: {exc}") from exc
        if not reply.get("ok"):
            raise control.ControlError(str(reply.get("error")))
        sock.settimeout(None)  # quiet hosts send nothing for a long time
        shown = 0
        try:
            for raw in reader:
                record = json.loads(raw)
                if "tail_dropped" in record:
                    print(f"ringwatch: {record['tail_dropped']} records dropped: this client read too slowly",
                          file=sys.stderr)
                    continue
                print(line(record) if fmt == "text" else dumps(record), flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    return 0
        except KeyboardInterrupt:
            return 0
    raise StreamEnded("the service closed the stream (stopped or restarted)")


LOG_LEVELS = ("debug", "info", "warning", "error")


def global_args(p: argparse.ArgumentParser, *, config_opt: bool = False, control: bool = False,
                top: bool = False, config_help: str | None = None) -> None:
    """Options accepted before the subcommand and after it (`ringwatch stats --log-json`).

    On a subcommand they default to SUPPRESS, so that leaving them out there keeps what
    was given before the subcommand; the top-level parser supplies the defaults."""
    def dflt(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    p.add_argument("--log-level", default=dflt("info"), choices=LOG_LEVELS, help="log verbosity (stderr)")
    p.add_argument("--log-json", action="store_true", default=dflt(False),
                   help="structured JSON logs on stderr")
    if config_opt:
        p.add_argument("--config", type=Path, default=dflt(None),
                       help=config_help or f"config naming control.socket "
                                           f"(default {config.DEFAULT_CONFIG_PATH})")
    if control:
        p.add_argument("--control-socket", default=dflt(None),
                       help="the running daemon's control socket (overrides --config)")


def _client_args(p: argparse.ArgumentParser) -> None:
    global_args(p, config_opt=True, control=True)
    p.add_argument("--json", action="store_true", help="print JSON")


def add_subcommands(sub: Any) -> None:
    st = sub.add_parser("stats", help="health counters of a running ringwatch")
    _client_args(st)
    st.set_defaults(func=_cmd_stats)

    mp = sub.add_parser("maps", help="a running ringwatch's BPF maps and their locked memory")
    _client_args(mp)
    mp.add_argument("--pin-dir", help="bpffs directory of pinned maps (default: the daemon's)")
    mp.add_argument("--bpftool", default="bpftool", help="bpftool executable")
    mp.set_defaults(func=_cmd_maps)

    rl = sub.add_parser("reload", help="make a running ringwatch re-read config and rules; "
                        "exit 1 if it rejects them")
    _client_args(rl)
    rl.add_argument("--pid", type=int, help="the daemon's pid (default: asked over the socket)")
    rl.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the verdict")
    rl.set_defaults(func=_cmd_reload)

    tl = sub.add_parser("tail", help="live alerts (and events) of a running ringwatch, filtered")
    global_args(tl, config_opt=True, control=True)
    tl.add_argument("--rule", action="append", metavar="NAME", help="only this rule's alerts (repeatable)")
    tl.add_argument("--priority", metavar="LEVEL", help="only alerts at this priority or more severe")
    tl.add_argument("--events", action="store_true", help="events too, not only alerts")
    tl.add_argument("--type", action="append", metavar="TYPE,...",
                    help="only these event types (alerts by their event); implies --events")
    tl.add_argument("--pid", type=int, help="only this process")
    tl.add_argument("--exe", metavar="PATH",
                    help="only this executable, as the kernel resolved it (proc.exepath)")
    tl.add_argument("-o", "--output", choices=["text", "json"],
                    help="text lines or JSON lines (default: text on a terminal)")
    tl.add_argument("--count", type=int, metavar="N", help="exit after N records")
    tl.set_defaults(func=_cmd_tail)

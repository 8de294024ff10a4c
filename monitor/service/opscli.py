"""`ringwatch stats` and `ringwatch maps`: ask a running daemon over its control socket."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from monitor import config
from monitor.service import control, maps, stats


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


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path,
        help=f"config naming control.socket (default {config.DEFAULT_CONFIG_PATH})",
    )
    p.add_argument("--control-socket", help="the running daemon's control socket (overrides --config)")
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

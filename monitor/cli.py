"""The `ringwatch` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor import config, log, opscli
from monitor.errors import UserError


def _cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Monitor, RunOptions
    from monitor.sinks.base import Sink
    from monitor.sinks.file import JsonlFileSink
    from monitor.sinks.stream import StreamSink

    overrides = list(args.set or [])
    if args.control_socket:
        overrides.append(f"control.socket={args.control_socket}")
    cfg = config.load(args.config, overrides)
    stdout = StreamSink("stdout")
    sinks: list[Sink] = [stdout]
    if args.record:
        sinks.append(JsonlFileSink(args.record, name="record"))
    opts = RunOptions(
        duration=args.duration, event_sinks=sinks, alert_sinks=[stdout],
        config_path=args.config, overrides=overrides,
    )
    return Monitor(cfg, opts).run()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ringwatch", description="eBPF host security monitor")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    sub = p.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="monitor in the foreground")
    run.add_argument("--config", type=Path, help=f"config file (default {config.DEFAULT_CONFIG_PATH})")
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument("--record", type=Path, help="also write every event as JSON lines here")
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config key, e.g. --set sensor.ringbuf_bytes=65536 (repeatable)",
    )
    run.add_argument("--control-socket", help="unix socket for `ringwatch stats` (control.socket)")
    run.set_defaults(func=_cmd_run)
    opscli.add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure(args.log_level, json=args.log_json)
    try:
        rc: int = args.func(args)
        return rc
    except UserError as exc:
        print(f"ringwatch: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `ringwatch` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from monitor import config, log
from monitor.errors import UserError
from monitor.service import opscli


def _cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Monitor, RunOptions
    from monitor.kernel.sensor import preflight
    from monitor.sinks import factory

    # Privileges, bpffs and bcc first: one line and exit 2 before anything else is set up.
    preflight()
    overrides = list(args.set or [])
    if args.control_socket:
        overrides.append(f"control.socket={args.control_socket}")
    cfg = config.load(args.config, overrides, allow_unsafe=args.allow_unsafe_files)
    # Alerts to stdout by default; events only when asked (they are many). config `outputs`.
    outputs = factory.build(cfg.outputs, factory.Wants(
        events_stdout=args.events is not None, events_types=_event_types(args.events), record=args.record,
        stdout_format=_stdout_format(args, cfg.outputs.alerts.stdout_format),
        log_level=args.log_level, log_json=args.log_json,
    ))
    opts = RunOptions(
        duration=args.duration, event_sinks=outputs.events, alert_sinks=outputs.alerts,
        config_path=args.config, overrides=overrides, rule_sources=_rule_sources(args),
        require_enforcement=args.require_enforcement, allow_unsafe_files=args.allow_unsafe_files,
    )
    try:
        monitor = Monitor(cfg, opts)
    except BaseException:
        outputs.close()  # their threads, and what Kafka holds goes to its spool
        raise
    return monitor.run()


def _stdout_format(args: argparse.Namespace, configured: str = "") -> str:
    """-o wins; then `outputs.alerts.stdout_format: text` in the config; else text on a terminal."""
    from monitor.sinks.textfmt import default_format

    if args.output:
        return str(args.output)
    if configured == "text":
        return "text"
    return default_format(sys.stdout.isatty())


def _add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=["text", "json"],
                        help="stdout format: one readable line per alert/event, or JSON lines "
                             "(default: text on a terminal, JSON otherwise)")


def _event_types(spec: str | None) -> frozenset[str] | None:
    from monitor.events.catalog import ALL_EVENT_TYPES

    if spec is None or spec == "all":
        return None
    types = frozenset(t.strip() for t in spec.split(",") if t.strip())
    unknown = sorted(types - ALL_EVENT_TYPES)
    if unknown:
        raise UserError(f"--events: unknown event type(s) {', '.join(unknown)} "
                        f"(known: all, {', '.join(sorted(ALL_EVENT_TYPES))})")
    return types


def _rule_sources(args: argparse.Namespace) -> Any:

    return config.rule_sources(args.rules or [], defaults=not args.no_default_rules,
                               allow_unsafe=args.allow_unsafe_files)


def _add_rules_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules", action="append", type=Path, metavar="PATH",
        help="rules file or directory, loaded after the defaults and /etc/ringwatch/rules.d (repeatable)",
    )
    parser.add_argument("--no-default-rules", action="store_true",
                        help="skip the packaged default ruleset")
    _add_unsafe_arg(parser)


def _add_unsafe_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-unsafe-files", action="store_true",
                        help="load rules and config files that non-root could have written "
                             "(development only; refused by default, like sshd's StrictModes)")


def _cmd_rules_validate(args: argparse.Namespace) -> int:
    """Exit 1 when the rules have errors (a finding); 2 when a PATH given cannot be read."""
    from monitor.rules import check

    for path in args.paths:
        if not path.exists():
            raise UserError(f"{path}: no such rules file or directory")
    sources = config.rule_sources(args.paths, defaults=not args.no_default_rules,
                                  allow_unsafe=args.allow_unsafe_files)
    ruleset, problems = check(sources)
    if ruleset is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"ringwatch: {len(problems)} error(s) in rules", file=sys.stderr)
        return 1
    for warning in ruleset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from monitor.enforce.rules import deny_specs
    from monitor.enforce.translate import TranslateError

    try:
        deny_specs(ruleset, "enforce")  # deny/audit rules must be checkable in the kernel
    except TranslateError as exc:
        print(exc, file=sys.stderr)
        print(f"ringwatch: {len(str(exc).splitlines())} error(s) in rules", file=sys.stderr)
        return 1
    skipped = f", {len(ruleset.skipped)} skipped" if ruleset.skipped else ""
    fallbacks = ruleset.fallbacks()
    extra = (f"; {len(fallbacks)} evaluated by rule-engine, not compiled: "
             + ", ".join(f"{r.name!r} ({r.fallback_reason})" for r in fallbacks)) if fallbacks else ""
    print(f"ok: {len(ruleset.rules)} rules{skipped} from {len(ruleset.files)} file(s){extra}")
    return 0


def _live_rule_stats(args: argparse.Namespace) -> dict[str, dict[str, int]] | None:
    """Per-rule counters of the instance behind --control-socket; None without one."""
    if args.control_socket is None:
        return None
    from monitor.service import control

    snap = control.request(Path(args.control_socket), "stats")
    rules = snap.get("rules") if isinstance(snap, dict) else None
    return rules if isinstance(rules, dict) else {}


def table(rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell (long rule names included); the last is left ragged."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
                     for r in rows)


def _cmd_rules_list(args: argparse.Namespace) -> int:
    import json

    from monitor.rules import load

    ruleset = load(_rule_sources(args))
    live = _live_rule_stats(args)
    rows: list[dict[str, Any]] = []
    for r in ruleset.rules:
        row: dict[str, Any] = {
            "name": r.name, "priority": r.priority, "enabled": r.enabled, "action": r.action,
            "tags": list(r.tags), "event_types": None if r.event_types is None else sorted(r.event_types),
            "file": r.file, "line": r.line,
            "evaluator": "compiled" if r.compiled else f"rule-engine ({r.fallback_reason})"}
        if live is not None:
            # A rule the running instance has not loaded (changed since its last reload) has none.
            row["live"] = live.get(r.name)
        rows.append(row)
    # Rules that cannot run here (a field ringwatch lacks, another source): listed, with why.
    rows += [
        {"name": s.name, "priority": s.priority, "enabled": "skipped", "action": "", "tags": [],
         "event_types": [], "file": s.file, "line": s.line, "skipped": s.reason}
        for s in ruleset.skipped
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    head = ["NAME", "PRIORITY", "ENABLED", "ACTION"]
    if live is not None:
        head += ["EVALUATED", "MATCHED", "ERRORS"]
    cells = [[*head, "EVENT TYPES", "TAGS"]]
    for row in rows:
        if "skipped" in row:
            blank = ["-"] * (3 if live is not None else 0)
            cells.append([row["name"], row["priority"], "skipped", "", *blank, "", row["skipped"]])
            continue
        line = [row["name"], row["priority"], "yes" if row["enabled"] else "no", row["action"]]
        if live is not None:
            st = row["live"] or {}
            line += [str(st.get(k, "-")) for k in ("evaluated", "matched", "errors")]
        types = "*" if row["event_types"] is None else ",".join(row["event_types"])
        cells.append([*line, types, ",".join(row["tags"])])
    print(table(cells))
    return 0


def _cmd_rules_fields(args: argparse.Namespace) -> int:
    from monitor.events.catalog import describe

    if args.markdown:
        print(fields_markdown(), end="")
        return 0
    for f in describe():
        where = f" [{', '.join(f['events'])}]" if f["events"] else ""
        print(f"{f['name']:22} {f['type']:5} {f['desc']}{where}")
    return 0


def fields_markdown() -> str:
    """docs/FIELDS.md: every field, its type, meaning, the events that set it, and whether
    Falco has a field of that name (the meaning is then Falco's)."""
    from monitor.events.catalog import describe
    from monitor.rules.falco.bridge import DERIVED
    from monitor.rules.falco.fieldtable import falco_fields

    falco = falco_fields()

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# Fields",
        "",
        "Generated by `ringwatch rules fields --markdown` from the event catalogue",
        "(`monitor/events/catalog.py`); `tests/test_rules_cli.py` fails when it is stale.",
        "\"Falco\": Falco has a field of that name, and ringwatch's means the same unless its",
        "meaning says how it is stricter (e.g. `fd.name` of an open is the file the kernel opened).",
        "\"events\": the event families that set it; empty means every event, or the lineage stage.",
        "",
        "| field | type | Falco | events | meaning |",
        "|---|---|---|---|---|",
    ]
    for f in describe():
        lines.append(f"| `{f['name']}` | {f['type']} | {'yes' if f['name'] in falco else '-'} | "
                     f"{', '.join(f['events'])} | {cell(f['desc'])} |")
    lines += ["", "Falco fields that Falco-syntax rules may also name, computed from the ones above:", ""]
    lines += [f"- `{name}` = `{cell(expr)}`" for name, (expr, _tp) in sorted(DERIVED.items())]
    return "\n".join(lines) + "\n"


def _cmd_replay(args: argparse.Namespace) -> int:
    from monitor.replay import replay_file
    from monitor.rules import load
    from monitor.sinks.stream import StreamSink

    ruleset = load(_rule_sources(args))
    from monitor.sinks.base import dumps
    from monitor.sinks.textfmt import FORMATS

    out = StreamSink("stdout", fmt=FORMATS.get(_stdout_format(args), dumps))

    def malformed(lineno: int, reason: str) -> None:
        print(f"{args.events}:{lineno}: skipped malformed event: {reason}", file=sys.stderr)

    st = replay_file(args.events, ruleset, out.emit, malformed)
    out.flush(0)
    print(f"replayed {st.events} events from {st.lines} lines: {st.alerts} alerts, "
          f"{st.malformed} malformed lines skipped", file=sys.stderr)
    if st.all_malformed:
        print(f"ringwatch: {args.events}: no line is an event", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from monitor.version import version

    p = argparse.ArgumentParser(
        prog="ringwatch", description="eBPF host security monitor",
        epilog="Exit status: 0 success; 1 findings (rules validate found errors, a reload was "
               "rejected, the tail stream ended); 2 usage or operator error (bad arguments, "
               "config, unreadable file, service unreachable, missing privileges).")
    p.add_argument("--version", action="version", version=f"ringwatch {version()}")
    opscli.global_args(p, config_opt=True, control=True, top=True)
    sub = p.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="monitor in the foreground")
    opscli.global_args(run, config_opt=True, control=True,
                       config_help=f"config file (default {config.DEFAULT_CONFIG_PATH})")
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument("--record", type=Path, help="also write every event as JSON lines here")
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config key, e.g. --set sensor.ringbuf_bytes=65536 (repeatable)",
    )
    run.add_argument("--events", nargs="?", const="all", metavar="TYPE,...",
                     help="also write events to stdout: all, or only these types (e.g. execve,execveat)")
    run.add_argument("--require-enforcement", action="store_true",
                     help="refuse to start (exit 2) unless deny rules can be enforced (BPF LSM)")
    _add_output_arg(run)
    _add_rules_args(run)
    run.set_defaults(func=_cmd_run)

    rules_p = sub.add_parser("rules", help="check and list rules")
    opscli.global_args(rules_p)
    rules = rules_p.add_subparsers(dest="rules_cmd", required=True)
    validate = rules.add_parser(
        "validate", help="load the rules the service would load, plus PATHs; list every error (exit 1)")
    opscli.global_args(validate)
    validate.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    validate.add_argument("--no-default-rules", action="store_true",
                          help="skip the packaged default ruleset")
    _add_unsafe_arg(validate)
    validate.set_defaults(func=_cmd_rules_validate)
    listing = rules.add_parser("list", help="loaded rules: name, priority, enabled, event types, tags; "
                               "with --control-socket, a running instance's evaluations, matches, errors")
    opscli.global_args(listing, control=True)
    _add_rules_args(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per rule")
    listing.set_defaults(func=_cmd_rules_list)
    fields = rules.add_parser("fields", help="the field names conditions and outputs may use")
    fields.add_argument("--markdown", action="store_true", help="as the table of docs/FIELDS.md")
    opscli.global_args(fields)
    fields.set_defaults(func=_cmd_rules_fields)

    replay = sub.add_parser("replay", help="evaluate recorded events (JSON lines) against the rules")
    opscli.global_args(replay)
    replay.add_argument("events", type=Path, metavar="EVENTS.jsonl")
    _add_output_arg(replay)
    _add_rules_args(replay)
    replay.set_defaults(func=_cmd_replay)
    opscli.add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.configure(args.log_level, json=args.log_json)
    try:
        rc: int = args.func(args)
        return rc
    except UserError as exc:
        # The one-line error is the daemon's last word under systemd: at error priority.
        print(f"{log.journal_prefix('error')}ringwatch: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`ringwatch rules fields | head`): nothing more to say, and the
        # interpreter must not complain when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())

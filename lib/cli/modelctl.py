"""``modelctl``: the command-line client of modeld (argparse + urllib only).

Exit statuses (for scripts):
  0  success
  1  the daemon reported an error (printed as one line: code and message)
  2  usage: bad arguments or a bad spec file, including a field or parameter the
     daemon refuses (validation_error, bad_request): the command line must change
  3  the daemon is unreachable
  4  no such model
  5  the model exited, failed or timed out before it was ready (deploy/start --wait)
  6  the daemon did not answer in time (it is running; the request may still complete)
  7  export: some fields could not be carried over (listed on stderr; --strict: nothing written)
  8  apply: partly applied (some steps failed or were skipped; each is listed)
A wrong daemon address (no such host, not a URL, https against an http daemon, an
untrusted certificate) is a bad argument: 2. ps --contexts/--all-contexts exits 3 when
any daemon did not answer (the others are shown).
"""

import argparse
import json
import shutil
import sys
import time

from lib import __version__, errors
from lib.cli import applying, contexts, exporting, render, spec_flags, top
from lib.core import vocabulary

(
    EXIT_OK,
    EXIT_ERROR,
    EXIT_USAGE,
    EXIT_UNREACHABLE,
    EXIT_NOT_FOUND,
    EXIT_NOT_READY,
    EXIT_TIMEOUT,
) = range(7)
WAIT_POLL = 0.5


def build_parser():
    parser = argparse.ArgumentParser(
        prog="modelctl", description="Drive modeld: deploy, inspect, stop models."
    )
    parser.add_argument(
        "--host",
        help="daemon URL or Unix socket path (default: $MODELD_HOST, "
        "the local daemon, http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--token", help="API token (default: $MODELD_TOKEN, else the token file in the home)"
    )
    parser.add_argument(
        "--cacert", help="CA certificate for an https:// daemon (default: $MODELD_CACERT)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument(
        "--context", help="a daemon named with `modelctl context add` (default: $MODELD_CONTEXT)"
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )

    deploy = verbs.add_parser(
        "deploy",
        parents=[json_flag],
        help="deploy a model: NAME [options] -- CMD ARG..., or -f SPEC",
        usage=(
            "modelctl deploy NAME [options] -- CMD [ARG...]\n       modelctl deploy -f SPEC.json|-"
        ),
    )
    deploy.add_argument("name", nargs="?")
    deploy.add_argument("-f", "--file", help="a JSON spec file, or - for stdin")
    deploy.add_argument("--port", help="auto, or a port number")
    deploy.add_argument(
        "--preset",
        metavar="SERVER",
        help="fill the server's defaults (probe, start period, port flag): GET /presets",
    )
    deploy.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="an environment variable (repeatable)",
    )
    deploy.add_argument(
        "--env-file", metavar="FILE", help="KEY=VALUE lines (dotenv); --env flags win over it"
    )
    deploy.add_argument(
        "--label", action="append", default=[], metavar="K=V", help="a label (repeatable)"
    )
    deploy.add_argument("--cwd", help="working directory (default: the current one)")
    deploy.add_argument("--health-http", metavar="PATH", help="HTTP probe path; 2xx is healthy")
    deploy.add_argument("--health-tcp", action="store_true", help="healthy when the port accepts")
    deploy.add_argument("--health-log", metavar="REGEX", help="healthy once the output matches")
    deploy.add_argument(
        "--start-period", type=float, metavar="S", help="seconds of grace while it loads"
    )
    deploy.add_argument("--restart", choices=("no", "on-failure", "always"), help="restart policy")
    deploy.add_argument("--max-retries", type=int, metavar="N")
    deploy.add_argument("--stop-timeout", type=float, metavar="S", help="grace before SIGKILL")
    deploy.add_argument("--dry-run", action="store_true", help="check and show what would run")
    _wait_flags(deploy)

    ps = verbs.add_parser("ps", parents=[json_flag], help="list models (running ones; -a for all)")
    ps.add_argument(
        "-a", "--all", action="store_true", help="include stopped, exited and failed models"
    )
    ps.add_argument("--contexts", metavar="A,B", help="these contexts, one table with HOST")
    ps.add_argument("--all-contexts", action="store_true", help="every context, one table")
    applying.selector_flags(ps)
    status = verbs.add_parser(
        "status", parents=[json_flag], help="one model in detail, with recent events"
    )
    status.add_argument("name")
    stop = verbs.add_parser("stop", parents=[json_flag], help="stop a model gracefully")
    stop.add_argument("name", nargs="?")
    applying.selector_flags(stop, all_help="every running model")
    stop.add_argument("--timeout", type=float, help="seconds before SIGKILL (default: the spec's)")
    start = verbs.add_parser("start", parents=[json_flag], help="start a stopped model")
    start.add_argument("name", nargs="?")
    applying.selector_flags(start)
    _wait_flags(start)
    restart = verbs.add_parser("restart", parents=[json_flag], help="restart a model")
    restart.add_argument("name", nargs="?")
    applying.selector_flags(restart)
    restart.add_argument(
        "--timeout", type=float, help="seconds before SIGKILL (default: the spec's)"
    )
    remove = verbs.add_parser(
        "rm", parents=[json_flag], help="stop a model and remove it and its logs"
    )
    remove.add_argument("name")
    remove.add_argument(
        "--timeout", type=float, help="seconds before SIGKILL (default: the spec's)"
    )

    logs = verbs.add_parser("logs", parents=[json_flag], help="show a model's logs")
    logs.add_argument("name", nargs="?")
    logs.add_argument("--all", action="store_true", help="every model's logs, merged by time")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)"
    )
    logs.add_argument(
        "-n",
        "--tail",
        type=int,
        metavar="N",
        help="the last N lines (default 100; 0 with -f: only new)",
    )
    logs.add_argument("--since", help="RFC 3339, epoch seconds, or relative (10m, 2h)")
    logs.add_argument("--until", help="same forms as --since")
    logs.add_argument("--level", help="minimum level (warning) or a range (info..error)")
    logs.add_argument("--stream", help="stdout, stderr, modeld, both or all")
    logs.add_argument("--grep", help="substring (ignores case when all lower-case)")
    logs.add_argument(
        "--probes", action="store_true", help="also show the lines health probes caused"
    )

    events = verbs.add_parser(
        "events", parents=[json_flag], help="state changes of one model or all"
    )
    events.add_argument("name", nargs="?")
    events.add_argument("-n", "--limit", type=int, default=20, metavar="N")
    verbs.add_parser(
        "gpus", parents=[json_flag], help="the host's GPUs, their models and memory holders"
    )
    events.add_argument("-f", "--follow", action="store_true", help="then print new events")
    events.add_argument("--since", help="RFC 3339, epoch seconds, or relative (10m, 2h)")
    top.add_parser(verbs, [json_flag])
    verbs.add_parser("version", parents=[json_flag], help="client and daemon versions")
    exporting.add_parser(verbs, json_flag)
    contexts.add_parser(verbs, json_flag)
    applying.add_parsers(verbs, json_flag)
    return parser


def _wait_flags(parser):
    parser.add_argument(
        "--wait", action="store_true", help="show progress until it is ready or failed"
    )
    parser.add_argument("--timeout", type=float, help="seconds to wait with --wait")


def main(argv=None, out=None, err=None):
    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, command = _split_command(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    args.command = command
    args.err = err
    try:
        client = contexts.client_for(args)
        return VERBS[args.verb](client, args, out) or EXIT_OK
    except spec_flags.UsageError as error:
        err.write("modelctl: %s\n" % error)
        return EXIT_USAGE
    except errors.ModeldError as error:
        err.write("modelctl: %s\n" % describe_error(error))
        return exit_status(error)
    except KeyboardInterrupt:
        return EXIT_OK if args.verb in ("logs", "events", "top") else 130
    except BrokenPipeError:
        # `modelctl logs | head`: the reader left; that is not an error.
        sys.stdout = None
        return EXIT_OK


def _split_command(argv):
    """``deploy NAME [options] -- CMD ARG...``: everything after ``--`` is the command."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def exit_status(error):
    if isinstance(error, errors.BadHostError):
        return EXIT_USAGE
    if isinstance(error, errors.DaemonTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(error, errors.DaemonUnreachableError):
        return EXIT_UNREACHABLE
    if isinstance(error, errors.ModelNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, errors.BadRequestError):
        return EXIT_USAGE  # the daemon refused a field or parameter the user gave
    if isinstance(error, (errors.DeploymentError, errors.WaitTimeoutError)):
        return EXIT_NOT_READY
    return EXIT_ERROR


def describe_error(error):
    """One line: the code and the message (and for a failed deploy, its last lines)."""
    if isinstance(error, errors.DaemonUnreachableError):
        return error.message
    text = "%s: %s" % (error.code, error.message)
    details = error.details if isinstance(error.details, dict) else {}
    lines = details.get("last_lines")
    not_ready = isinstance(error, (errors.DeploymentError, errors.WaitTimeoutError))
    if not_ready and details.get("status"):
        text += "\n  status: %s, reason so far: %s" % (
            details["status"],
            details.get("cause") or details.get("reason") or details.get("status_reason"),
        )
    if not_ready and details.get("first_error"):
        text += "\n  first error:\n" + "\n".join("    " + line for line in details["first_error"])
    if lines:
        text += "\n  last lines:\n" + "\n".join("    " + line for line in lines[-20:])
    return text


def emit_json(out, payload):
    out.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")


# -- verbs ---------------------------------------------------------------------


def cmd_deploy(client, args, out):
    spec = spec_flags.spec_from_args(args)
    if args.dry_run:
        result = client.deploy(spec, dry_run=True)
        if args.json:
            emit_json(out, result)
        else:
            out.write("ok: would run %s\n" % " ".join(result["command"]))
            if result.get("endpoint"):
                out.write("endpoint: %s\n" % result["endpoint"])
        return EXIT_OK
    result = client.deploy(spec)
    if args.wait:
        return wait_until_ready(client, result["name"], args.timeout, args.json, out)
    if args.json:
        emit_json(out, result)
    else:
        out.write("deployed %s: %s%s\n" % (result["name"], result["status"], _endpoint(result)))
    return EXIT_OK


def _endpoint(model):
    return " at %s" % model["endpoint"] if model.get("endpoint") else ""


def wait_until_ready(client, name, timeout, as_json, out):
    """Print each status change until the model is ready (0) or failed (5)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = None
    while True:
        model = client.get(name)
        line = "%s: %s (health %s)%s" % (
            name,
            model["status"],
            model["health"],
            " - %s" % model["reason"] if model.get("reason") else "",
        )
        if line != shown and not as_json:
            out.write(line + "\n")
            out.flush()
            shown = line
        if model["ready"]:
            if as_json:
                emit_json(out, model)
            else:
                out.write("ready%s\n" % _endpoint(model))
            return EXIT_OK
        if model["status"] == vocabulary.BACKOFF or model["status"] in vocabulary.TERMINAL:
            if as_json:
                emit_json(out, model)
            else:
                _print_exit(out, model)
            return EXIT_NOT_READY
        if deadline is not None and time.monotonic() > deadline:
            if as_json:
                emit_json(out, model)
            else:
                out.write("still %s after %gs\n" % (model["status"], timeout))
            return EXIT_NOT_READY
        time.sleep(WAIT_POLL)


def _print_exit(out, model):
    for line in render.exit_lines(model):
        out.write(line + "\n")


def cmd_ps(client, args, out):
    if args.contexts or args.all_contexts:
        return _ps_across_contexts(args, out)
    models = client.list(None if args.all else sorted(vocabulary.ACTIVE), args.label or None)
    if args.json:
        emit_json(out, {"models": models})
        return EXIT_OK
    _print_ps(out, _ps_rows(models), [], args.all)
    return EXIT_OK


def _ps_across_contexts(args, out):
    """One table over several daemons (HOST = the context); each silent daemon is reported on
    stderr and makes the status 3, but never hides the others."""
    wanted = None if args.all else sorted(vocabulary.ACTIVE)
    answers, failures = contexts.gather(args, contexts.names_for(args), lambda c: c.list(wanted))
    for name, error in failures:
        args.err.write("modelctl: context %s: %s\n" % (name, describe_error(error)))
    if args.json:
        models = [dict(model, context=name) for name, models in answers for model in models]
        unreachable = [{"context": name, "error": error.message} for name, error in failures]
        emit_json(out, {"models": models, "unreachable": unreachable})
    else:
        rows = [dict(row, HOST=name) for name, models in answers for row in _ps_rows(models)]
        _print_ps(out, rows, ["HOST"], args.all)
    return EXIT_UNREACHABLE if failures else EXIT_OK


def _ps_rows(models):
    return [
        {
            "NAME": model["name"],
            "STATUS": model["status"],
            "HEALTH": model["health"],
            "PID": model["pid"] or "-",
            "PORT": model["port"] or "-",
            "RESTARTS": model["restarts"],
            "UPTIME": render.human_duration(model["metrics"]["uptime_s"]),
            "CPU%": render.or_dash(model["metrics"]["cpu_percent"]),
            "MEM": render.human_bytes(model["metrics"]["rss_bytes"]),
            "REASON": model.get("reason") or "",
            "GPU": render.gpu_cell(model),
        }
        for model in models
    ]


def _print_ps(out, rows, first, show_all):
    columns = first + [
        "NAME",
        "STATUS",
        "HEALTH",
        "PID",
        "PORT",
        "RESTARTS",
        "UPTIME",
        "CPU%",
        "MEM",
        "REASON",
    ]
    # Dropped first when the terminal is narrow: the right-most, least essential ones.
    optional = ["REASON", "CPU%", "MEM", "RESTARTS", "HEALTH", "UPTIME", "PID"]
    if any(row["GPU"] != "-" for row in rows):  # a GPU column only where a model has GPUs
        columns.insert(columns.index("MEM") + 1, "GPU")
        optional.insert(1, "GPU")
    out.write(render.table(rows, columns, optional, terminal_width()))
    if not rows:
        out.write("(no %smodels)\n" % ("" if show_all else "running "))


def cmd_status(client, args, out):
    model = client.get(args.name)
    events = client.events(args.name, limit=10)
    if args.json:
        emit_json(out, dict(model, events=events))
        return EXIT_OK
    metrics = model["metrics"]
    spec = model["spec"]
    fields = [
        ("name", model["name"]),
        ("status", "%s%s" % (model["status"], " (ready)" if model["ready"] else "")),
        ("reason", model.get("reason") or "-"),
        ("health", model["health"]),
        ("pid", model["pid"] or "-"),
        ("endpoint", model.get("endpoint") or "-"),
        ("command", " ".join(spec["command"])),
        ("cwd", spec["cwd"]),
        (
            "restart",
            "%s (max %s retries), %d restarts so far"
            % (spec["restart"]["policy"], spec["restart"]["max_retries"], model["restarts"]),
        ),
        ("created", model["created_at"]),
        ("started", model.get("started_at") or "-"),
        ("uptime", render.human_duration(metrics["uptime_s"])),
        ("cpu", "%s%%" % render.or_dash(metrics["cpu_percent"])),
        ("memory", render.human_bytes(metrics["rss_bytes"])),
        ("threads", render.or_dash(metrics["threads"])),
        ("logs", render.human_bytes(metrics["log_bytes"])),
    ]
    width = max(len(key) for key, _ in fields)
    for key, value in fields:
        out.write("%-*s  %s\n" % (width, key, value))
    _print_exit(out, model)
    if events:
        out.write("recent events:\n")
        for event in events:
            out.write("  %s\n" % render.event_line(event))
    return EXIT_OK


def _simple(action):
    def command(client, args, out):
        result = action(client, args)
        if args.json:
            emit_json(out, result)
        else:
            out.write(
                "%s: %s%s\n"
                % (
                    result["name"],
                    result["status"],
                    " (removed with its logs)" if result.get("purged") else "",
                )
            )
        return EXIT_OK

    return command


def _show_simple(out, result, args):
    _simple(lambda *_: result)(None, args, out)


def cmd_stop(client, args, out):
    return applying.for_each(
        client, args, out, "stop", lambda name: client.stop(name, args.timeout), _show_simple
    )


def cmd_restart(client, args, out):
    return applying.for_each(
        client, args, out, "restart", lambda name: client.restart(name, args.timeout), _show_simple
    )


cmd_rm = _simple(lambda client, args: client.stop(args.name, args.timeout, purge=True))


def cmd_start(client, args, out):
    if not args.name:
        return applying.for_each(client, args, out, "start", client.start, _show_simple)
    result = client.start(args.name)
    if args.wait:
        return wait_until_ready(client, args.name, args.timeout, args.json, out)
    return _simple(lambda *_: result)(client, args, out)


def cmd_logs(client, args, out):
    if (args.name is None) == (not args.all):
        raise spec_flags.UsageError("logs: give a model NAME or --all (not both)")
    params = {
        "since": args.since,
        "until": args.until,
        "level": args.level,
        "stream": args.stream,
        "grep": args.grep,
        "probes": "include" if args.probes else None,
    }
    params = {key: value for key, value in params.items() if value is not None}
    tail = args.tail
    if tail is None and not (args.since or args.until):
        tail = 100
    if tail is not None:
        params["tail"] = tail  # 0 is meaningful: with -f, only new lines
    if args.follow:
        for entry in client.follow(args.name, **params):
            _print_entry(out, entry, args.json)
            out.flush()
        # The stream ends when the model stops, or when the daemon goes away: say which.
        client.get(args.name) if args.name else client.health()
        return EXIT_OK
    params["limit"] = 10_000
    while True:
        page = client.logs(args.name, **params)
        for entry in page["entries"]:
            _print_entry(out, entry, args.json)
        if not page["has_more"]:
            return EXIT_OK
        # A page ends at 10,000 entries or a few MiB: go on from its cursor (a tail included).
        params.pop("tail", None)
        params["cursor"] = page["next_cursor"]


def _print_entry(out, entry, as_json):
    out.write((json.dumps(entry, sort_keys=True) if as_json else render.entry_line(entry)) + "\n")


def cmd_events(client, args, out):
    if args.follow:
        if args.name:
            raise spec_flags.UsageError("events -f follows every model: drop NAME")
        for event in client.follow_events(since=args.since, limit=args.limit):
            line = (
                json.dumps(event, sort_keys=True) if args.json else render.event_line(event, True)
            )
            out.write(line + "\n")
            out.flush()
        return EXIT_OK
    events = client.events(args.name, limit=args.limit, since=args.since)
    if args.json:
        emit_json(out, {"events": events})
        return EXIT_OK
    for event in events:
        out.write(render.event_line(event, with_model=True) + "\n")
    return EXIT_OK


def cmd_gpus(client, args, out):
    inventory = client.gpus()
    if args.json:
        emit_json(out, inventory)
        return EXIT_OK
    rows = [render.gpu_row(device) for device in inventory["gpus"]]
    columns = ["GPU", "NAME", "UUID", "USED", "TOTAL", "UTIL%", "MODELS", "OTHERS"]
    out.write(render.table(rows, columns, ["UUID", "NAME", "OTHERS"], terminal_width()))
    if not rows:
        out.write("(no GPU: %s)\n" % (inventory.get("error") or "none found"))
    return EXIT_OK


def cmd_version(client, args, out):
    try:
        daemon = client.info().get("version")
    except errors.DaemonUnreachableError:
        daemon = None
    if args.json:
        emit_json(out, {"client": __version__, "daemon": daemon, "host": client.host})
    else:
        out.write(
            "modelctl %s\nmodeld   %s (%s)\n"
            % (__version__, daemon or "not reachable", client.host)
        )
    return EXIT_OK


def cmd_export(client, args, out):
    return exporting.cmd_export(client, args, out, args.err)


# The verbs of build_parser(), each to its function (a test checks both list the same).
VERBS = {
    "deploy": cmd_deploy,
    "ps": cmd_ps,
    "status": cmd_status,
    "stop": cmd_stop,
    "start": cmd_start,
    "restart": cmd_restart,
    "rm": cmd_rm,
    "logs": cmd_logs,
    "events": cmd_events,
    "gpus": cmd_gpus,
    "top": lambda client, args, out: top.cmd_top(client, args, out, terminal_width),
    "version": cmd_version,
    "export": cmd_export,
    "context": contexts.cmd_context,
    "apply": applying.cmd_apply,
    "diff": applying.cmd_diff,
    "export-spec": applying.cmd_export_spec,
}


# -- rendering -----------------------------------------------------------------


def terminal_width():
    return shutil.get_terminal_size((120, 24)).columns

"""``modeld``: start, stop, inspect the daemon (``lib.cli.entry`` runs a model's monitor).

Exit statuses: 0 ok; 1 error (the reason is printed); 2 usage; 3 ``status``
found no running daemon.
"""

import argparse
import os
import signal
import sys

from lib import __version__
from lib.api import ratelimit
from lib.core import paths, tokens, vocabulary
from lib.daemon import config


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        default=None,
        help="state directory (default: $MODELD_HOME, /var/lib/modeld for "
        "root, else ~/.local/state/modeld)",
    )
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument(
        "--host", default=config.DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    serving.add_argument(
        "--port",
        type=int,
        default=config.DEFAULT_PORT,
        help="TCP port (default %(default)s; 0 picks a free one)",
    )
    serving.add_argument(
        "--socket", help="listen on this Unix socket instead of TCP (no token needed)"
    )
    serving.add_argument("--socket-group", help="group that may use the socket (mode 0660)")
    serving.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    serving.add_argument("--tls-key", help="the certificate's private key (PEM)")
    serving.add_argument(
        "--no-auth", action="store_true", help="no bearer token (refused on a non-loopback address)"
    )
    serving.add_argument(
        "--metrics-no-auth",
        action="store_true",
        help="serve GET /metrics without the token (loopback or a Unix socket only)",
    )
    serving.add_argument(
        "--rate-limit",
        default=None,
        help="per-client RATE[/BURST] requests a second (default %s), or off" % ratelimit.DEFAULT,
    )
    serving.add_argument("--threads", type=int, help="HTTP worker threads (default 32)")
    serving.add_argument(
        "--head-timeout",
        type=float,
        help="seconds a client has to send a whole request head (default 10)",
    )
    serving.add_argument(
        "--max-connections",
        type=int,
        help="open connections in all (default 4096, less under a low open files limit)",
    )
    serving.add_argument(
        "--max-connections-per-client",
        type=int,
        help="open connections from one address (default 256)",
    )
    serving.add_argument(
        "--max-waiters",
        type=int,
        help="concurrent ?wait=true deploys/starts and restarts (default 8)",
    )
    serving.add_argument(
        "--log-max-bytes", type=int, help="default size of a model's log file before rotation"
    )
    serving.add_argument(
        "--nvidia-smi",
        metavar="PATH",
        help="the nvidia-smi to query for GPUs (default: the one on PATH; none: no GPU support)",
    )
    serving.add_argument(
        "--log-backups", type=int, help="default number of rotated log files kept per model"
    )
    serving.add_argument(
        "--default-user",
        metavar="USER",
        help="run models whose spec sets no user as USER (recommended for a root daemon)",
    )
    serving.add_argument(
        "--allow-exec",
        metavar="PATTERN",
        action="append",
        default=[],
        help="only programs whose absolute path matches this glob may run (repeatable)",
    )

    parser = argparse.ArgumentParser(
        prog="modeld", description="Deploy and supervise model servers."
    )
    parser.add_argument("--version", action="version", version="modeld %s" % __version__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    verbs.add_parser("start", parents=[common, serving], help="start the daemon in the background")
    run = verbs.add_parser(
        "run", parents=[common, serving], help="run the daemon in the foreground"
    )
    run.add_argument(
        "--apply",
        metavar="FILE",
        help="apply this models file once serving (running models are adopted, not restarted)",
    )
    stop = verbs.add_parser("stop", parents=[common], help="stop the daemon (models keep running)")
    stop.add_argument("--models", action="store_true", help="also stop every model")
    stop.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    verbs.add_parser("status", parents=[common], help="is the daemon running? (exit 3 if not)")
    token = verbs.add_parser(
        "token", parents=[common], help="show or rotate the admin token; named tokens"
    )
    token.add_argument(
        "action", choices=("show", "rotate", "create", "list", "revoke"), nargs="?", default="show"
    )
    token.add_argument("name", nargs="?", help="the named token (create, revoke)")
    token.add_argument(
        "--scope",
        choices=vocabulary.SCOPES,
        default=vocabulary.SCOPE_READ,
        help="what a created token may do (default read)",
    )
    verbs.add_parser("version", help="print the version")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    return VERBS[args.verb](args)


def _config(args):
    """The checked configuration of ``start`` and ``run``."""
    try:
        ratelimit.parse_setting(args.rate_limit)
    except ratelimit.ConfigError as error:
        raise config.ConfigError(str(error)) from None
    daemon_config = config.DaemonConfig(
        home=args.home,
        host=args.host,
        port=args.port,
        socket=args.socket,
        socket_group=args.socket_group,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        no_auth=args.no_auth,
        metrics_no_auth=args.metrics_no_auth,
        threads=args.threads,
        rate_limit=args.rate_limit,
        log_max_bytes=args.log_max_bytes,
        log_backups=args.log_backups,
        nvidia_smi=args.nvidia_smi,
        head_timeout=args.head_timeout,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
        max_waiters=args.max_waiters,
        default_user=args.default_user,
        allow_exec=args.allow_exec,
    )
    daemon_config.check()
    return daemon_config


def _checked(function):
    def wrapper(args):
        try:
            return function(args)
        except config.ConfigError as error:
            sys.stderr.write("modeld: %s\n" % error)
            return 2

    return wrapper


@_checked
def cmd_start(args):
    from lib.daemon import process

    daemon_config = _config(args)
    report = process.start_background(daemon_config)
    if report is None:
        log_file = paths.Home(daemon_config.home).daemon_log
        sys.stderr.write("modeld exited during start-up; see %s\n" % log_file)
        return 1
    if not report["ok"]:
        sys.stderr.write("modeld: %s\n" % report["message"])
        return 1
    print(
        "modeld is running at %s (pid %s, home %s)"
        % (report["message"], report["pid"], daemon_config.home)
    )
    return 0


@_checked
def cmd_run(args):
    from lib.daemon import process

    models_file = _models_file(args)
    if models_file is False:
        return 2

    def report(ok, message):
        if ok:
            sys.stderr.write("modeld is running at %s\n" % message)
            if models_file is not None:
                _apply_in_background(daemon, models_file, args.apply)
        else:
            sys.stderr.write("modeld: %s\n" % message)

    daemon = process.Daemon(_config(args), report=report, to_stderr=True)
    return daemon.run()


def _models_file(args):
    """The ``POST /apply`` body of ``--apply FILE`` (``None``: none; ``False``: unreadable)."""
    if not getattr(args, "apply", None):
        return None
    from lib.cli import applying, spec_flags

    try:
        return applying.load_models_file(args.apply)
    except spec_flags.UsageError as error:
        sys.stderr.write("modeld: --apply: %s\n" % error)
        return False


def _apply_in_background(daemon, body, path):
    """Apply the models file once the daemon serves; the outcome goes to the daemon's log."""
    import logging
    import threading

    from lib.daemon import apply

    log = logging.getLogger("modeld.apply")

    def run():
        try:
            request = apply.parse_request(body)
            result = daemon.supervisor.applier.apply(request, cause={"reason": "run --apply"})
        except Exception as error:  # noqa: BLE001 - the daemon serves on; the log says why
            log.error("--apply %s failed: %s", path, error)
            return
        steps = ", ".join("%s %s" % (step["name"], step["kind"]) for step in result["plan"])
        log.info("--apply %s: %s (%s)", path, result["result"], steps or "nothing to do")

    threading.Thread(target=run, name="apply-at-start", daemon=True).start()


def cmd_stop(args):
    from lib.daemon import process

    home = paths.Home(config.DaemonConfig(home=args.home).home)
    try:
        pid = process.signal_stop(home, args.models)
    except process.NoLiveDaemon:
        sys.stderr.write(
            "modeld: the lock of %s is held but daemon.json names no live daemon\n" % home.root
        )
        return 1
    if pid is None:
        print("modeld is not running (home %s)" % home.root)
        return 0
    if not process.wait_released(home, args.timeout):
        sys.stderr.write("modeld (pid %d) is still stopping after %gs\n" % (pid, args.timeout))
        return 1
    failures = process.unstopped_models(home) if args.models else {}
    for name, why in sorted(failures.items()):
        sys.stderr.write("modeld: model %r: %s (see daemon.log)\n" % (name, why))
    if failures:
        sys.stderr.write("modeld stopped; %d model(s) not stopped\n" % len(failures))
        return 1
    print("modeld stopped%s" % (" with its models" if args.models else ""))
    return 0


def cmd_status(args):
    """0 and a summary if the home's daemon runs; 3 (as LSB init scripts) if not."""
    from lib.daemon import process

    home = paths.Home(config.DaemonConfig(home=args.home).home)
    info = process.running_daemon(home)
    if info is None:
        print("modeld is not running (home %s)" % home.root)
        return 3
    print(
        "modeld %s is running at %s (pid %s, home %s)"
        % (info.get("version"), info.get("url"), info.get("pid"), home.root)
    )
    return 0


def cmd_token(args):
    from lib.daemon import process

    home = paths.Home(config.DaemonConfig(home=args.home).home)
    if args.action in NAMED_TOKEN_ACTIONS:
        return NAMED_TOKEN_ACTIONS[args.action](home, args)
    if args.action == "rotate":
        token = tokens.write_token(home)
        running = process.running_daemon(home)
        if running and running.get("pid"):
            os.kill(running["pid"], signal.SIGHUP)  # it re-reads the token at once
            sys.stderr.write(
                "the running daemon (pid %d) now takes only the new token\n" % running["pid"]
            )
        print(token)
        return 0
    token = tokens.read_token(home)
    if token is None:
        sys.stderr.write("modeld: no token yet in %s (it is made on first start)\n" % home.root)
        return 1
    print(token)
    return 0


def _token_create(home, args):
    import time

    if not args.name:
        sys.stderr.write("modeld: token create NAME [--scope read|operate|admin]\n")
        return 2
    os.makedirs(home.root, mode=0o700, exist_ok=True)
    try:
        entry, token = tokens.create_named(
            home.tokens, args.name, args.scope, vocabulary.SCOPES, time.time()
        )
    except tokens.TokenError as error:
        sys.stderr.write("modeld: %s\n" % error)
        return 1
    sys.stderr.write(
        "token %r (scope %s): shown once, store it now\n" % (entry["name"], args.scope)
    )
    print(token)
    return 0


def _token_list(home, args):
    for entry in tokens.load_named(home.tokens):
        print("%-24s %-8s" % (entry["name"], entry["scope"]))
    return 0


def _token_revoke(home, args):
    if not args.name:
        sys.stderr.write("modeld: token revoke NAME\n")
        return 2
    if not tokens.revoke_named(home.tokens, args.name):
        sys.stderr.write("modeld: no token named %r in %s\n" % (args.name, home.root))
        return 1
    print("revoked %s (effective at once, open follow streams end)" % args.name)
    return 0


# `modeld token create|list|revoke`: the file in the home is read by the daemon on change.
NAMED_TOKEN_ACTIONS = {"create": _token_create, "list": _token_list, "revoke": _token_revoke}


def cmd_version(args):
    print("modeld %s" % __version__)
    return 0


# The verbs of build_parser(), each to its function (a test checks both list the same).
VERBS = {
    "start": cmd_start,
    "run": cmd_run,
    "stop": cmd_stop,
    "status": cmd_status,
    "token": cmd_token,
    "version": cmd_version,
}

"""Contexts: named daemons in one config file, as docker and kubectl have them.

    modelctl context add gpu1 https://gpu1:8000 --token-file ~/.modeld/gpu1.token
    modelctl context use gpu1          # the default from now on
    modelctl --context gpu2 ps         # or MODELD_CONTEXT=gpu2
    modelctl ps --all-contexts         # every daemon, one table with a HOST column

The file is ``$XDG_CONFIG_HOME/modeld/contexts.json`` (``~/.config/modeld/contexts.json``),
mode 0600, written atomically. It holds the path of each token file, never a token. Each daemon
stays independent: a context is only where to send a request.

Which daemon a command talks to, first match wins: ``--context`` or ``--host`` (not both);
``$MODELD_CONTEXT``; ``$MODELD_HOST``; the current context; the local daemon. A context's
token file beats ``$MODELD_TOKEN`` (which belongs to the local daemon); ``--token`` beats both.
"""

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from lib import errors
from lib.cli.client import Client
from lib.cli.spec_flags import UsageError

EMPTY = {"current": None, "contexts": {}}


def config_path(environ=None):
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "modeld", "contexts.json")


def load(environ=None):
    try:
        with open(config_path(environ)) as handle:
            config = json.load(handle)
    except FileNotFoundError:
        return json.loads(json.dumps(EMPTY))
    except (OSError, ValueError) as error:
        raise UsageError("cannot read %s: %s" % (config_path(environ), error)) from None
    config.setdefault("contexts", {})
    config.setdefault("current", None)
    return config


def save(config, environ=None):
    """Write the file atomically, mode 0600 (its folder 0700)."""
    path = config_path(environ)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".contexts.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def context(config, name, environ=None):
    found = config["contexts"].get(name)
    if found is None:
        known = ", ".join(sorted(config["contexts"])) or "none yet"
        raise UsageError(
            "no context named %r (known: %s; add one with `modelctl context add`)" % (name, known)
        )
    return found


def read_token(entry):
    path = entry.get("token_file")
    if not path:
        return None
    try:
        with open(os.path.expanduser(path)) as handle:
            return handle.read().strip() or None
    except OSError as error:
        raise UsageError("cannot read the token file %s: %s" % (path, error)) from None


def chosen_context(args, environ):
    """The context name this command uses, or None for a host or the local daemon."""
    if getattr(args, "context", None):
        if args.host:
            raise UsageError("give --context or --host, not both")
        return args.context
    if args.host:
        return None
    if environ.get("MODELD_CONTEXT"):
        return environ["MODELD_CONTEXT"]
    if environ.get("MODELD_HOST"):
        return None
    return load(environ).get("current")


def client_for(args, environ=None, name=None):
    """A ``Client`` for the command (or for context ``name``): see the module's rules."""
    environ = os.environ if environ is None else environ
    name = name or chosen_context(args, environ)
    if name is None:
        return Client(args.host, args.token, cafile=args.cacert)
    entry = context(load(environ), name, environ)
    client = Client(entry["url"], cafile=args.cacert or entry.get("cacert"))
    client.token = args.token or read_token(entry)  # never the local daemon's token
    client.context = name
    return client


# -- the verb ----------------------------------------------------------------------


def add_parser(verbs, json_flag):
    verb = verbs.add_parser(
        "context", parents=[json_flag], help="named daemons: add, use, ls, rm (see --context)"
    )
    actions = verb.add_subparsers(dest="context_action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="add or replace a context: NAME URL")
    add.add_argument("name")
    add.add_argument("url", help="the daemon's URL or Unix socket path")
    add.add_argument("--token-file", help="a file holding the daemon's token")
    add.add_argument("--cacert", help="CA certificate for an https:// daemon")
    use = actions.add_parser("use", help="make a context the default")
    use.add_argument("name")
    actions.add_parser("ls", help="list the contexts (* marks the current one)")
    remove = actions.add_parser("rm", help="remove a context")
    remove.add_argument("name")


def cmd_context(client, args, out):
    config = load()
    action = args.context_action
    if action == "add":
        entry = {"url": args.url}
        if args.token_file:
            entry["token_file"] = os.path.abspath(os.path.expanduser(args.token_file))
            read_token(entry)  # fail now, not at the first request
        if args.cacert:
            entry["cacert"] = os.path.abspath(args.cacert)
        config["contexts"][args.name] = entry
        save(config)
        out.write("context %s: %s\n" % (args.name, args.url))
    elif action == "use":
        context(config, args.name)
        config["current"] = args.name
        save(config)
        out.write("current context: %s\n" % args.name)
    elif action == "rm":
        context(config, args.name)
        del config["contexts"][args.name]
        if config["current"] == args.name:
            config["current"] = None
        save(config)
        out.write("removed context %s\n" % args.name)
    else:
        _list(config, args, out)
    return 0


def _list(config, args, out):
    if args.json:
        out.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return
    if not config["contexts"]:
        out.write("(no contexts: add one with `modelctl context add NAME URL`)\n")
    for name, entry in sorted(config["contexts"].items()):
        mark = "*" if name == config["current"] else " "
        out.write("%s %-16s %s\n" % (mark, name, entry["url"]))


# -- one command over several daemons ------------------------------------------------


def names_for(args, environ=None):
    """The contexts of ``--contexts a,b`` or ``--all-contexts``."""
    config = load(environ)
    if args.all_contexts:
        names = sorted(config["contexts"])
        if not names:
            raise UsageError("no contexts yet: add one with `modelctl context add NAME URL`")
        return names
    names = [name.strip() for name in args.contexts.split(",") if name.strip()]
    for name in names:
        context(config, name, environ)
    return names


def gather(args, names, query):
    """``(answers, failures)``: ``query(client)`` on each context at once; one daemon that
    does not answer is reported in ``failures`` and never stops the others."""

    def one(name):
        try:
            return name, query(client_for(args, name=name)), None
        except errors.ModeldError as error:
            return name, None, error

    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        results = list(pool.map(one, names))
    answers = [(name, value) for name, value, error in results if error is None]
    failures = [(name, error) for name, _, error in results if error is not None]
    return answers, failures

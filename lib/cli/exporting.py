"""``modelctl export``: a model for Kubernetes, Nomad, systemd or Slurm, nothing lost silently.

From a spec or apply file (``-f``, translated here, secrets included in their own Secret or
file) or from a deployed model (``NAME``, translated by the daemon, which never sends secret
values: the export says where to fill them in). Every field the target cannot carry is listed
on stderr and in the output (an annotation or comment); then the exit status is
``EXIT_INCOMPLETE`` (7), and ``--strict`` writes nothing at all.
"""

import json
import os

from lib.cli.spec_flags import UsageError
from lib.export import common, source, targets

EXIT_INCOMPLETE = 7


def add_parser(verbs, json_flag):
    verb = verbs.add_parser(
        "export",
        parents=[json_flag],
        help="a model (NAME) or a spec/apply file (-f) for kubernetes|nomad|systemd|slurm",
    )
    verb.add_argument("name", nargs="?", help="a deployed model")
    verb.add_argument("-f", "--file", help="a spec or apply file (JSON), or - for stdin")
    verb.add_argument("--to", required=True, choices=targets.TARGETS, help="the target engine")
    verb.add_argument("-o", "--output", metavar="DIR", help="write the files here (else stdout)")
    verb.add_argument("--strict", action="store_true", help="refuse when a field is unmapped")
    verb.add_argument("--image", help="container image (kubernetes: required)")
    verb.add_argument("--k8s-version", default="1.32", help="target Kubernetes (default 1.32)")
    verb.add_argument("--namespace", help="kubernetes namespace")
    verb.add_argument("--port", type=int, help='the port on the target for "auto" (default 8000)')
    verb.add_argument("--modeld-path", default="/usr/local/bin/modeld.pyz", help="systemd")
    verb.add_argument("--modeld-home", default="/var/lib/modeld", help="systemd: modeld's home")


def cmd_export(client, args, out, err):
    if bool(args.name) == bool(args.file):
        raise UsageError("give a model NAME or -f FILE")
    if args.file:
        result = _from_file(args)
    else:
        query = {"to": args.to, "image": args.image, "k8s_version": args.k8s_version}
        query["port"] = args.port
        result = client.export(args.name, **query)
    _report(result, err)
    if args.strict and not result["complete"]:
        err.write(
            "modelctl: export refused (--strict): %d unmapped field(s)\n" % len(result["unmapped"])
        )
        return EXIT_INCOMPLETE
    if args.json:
        out.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    elif args.output:
        _write(args.output, result["files"], out)
    else:
        for name, text in result["files"].items():
            out.write("# ---- %s\n%s" % (name, text))
    return 0 if result["complete"] else EXIT_INCOMPLETE


def _from_file(args):
    try:
        if args.file == "-":
            import sys

            document, base = json.load(sys.stdin), os.getcwd()
        else:
            with open(args.file) as handle:
                document = json.load(handle)
            base = os.path.dirname(os.path.abspath(args.file))
    except (OSError, ValueError) as error:
        raise UsageError("cannot read %s: %s" % (args.file, error)) from None
    options = common.Options(
        image=args.image,
        k8s_version=args.k8s_version,
        port=args.port,
        modeld_path=args.modeld_path,
        modeld_home=args.modeld_home,
        namespace=args.namespace,
    )
    try:
        return targets.export(
            source.specs_from_document(document, base), args.to, options
        ).to_dict()
    except ValueError as error:
        raise UsageError(str(error)) from None


def _report(result, err):
    for item in result["unmapped"]:
        err.write(
            "modelctl: unmapped: %s=%s: %s\n"
            % (item["field"], json.dumps(item["value"]), item["why"])
        )
    for text in result["notes"]:
        err.write("modelctl: note: %s\n" % text)


def _write(folder, files, out):
    """Each file into ``folder``; files holding secrets (a Secret, an env file) mode 0600."""
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(folder, name)
        secret = name.endswith(".env") or 'kind: "Secret"' in text
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        out.write("wrote %s\n" % path)

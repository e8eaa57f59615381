"""What every export target shares: the result, the rules for reporting a loss, names, secrets.

Reporting rule (the README's "Outgrowing one host" repeats it): a field is **unmapped** when the
target cannot express it and the spec asks for something the target will not do (a value other
than modeld's default, or a feature such as a log probe or pinned GPU ids). A field left at
modeld's default whose target behaves a little differently is a **note**: printed, never hidden,
but the export still counts as complete. ``--strict`` refuses an export with any unmapped field.
"""

import json
import math
import re

from lib.core import redact
from lib.core import spec as specs

UNMAPPED_ANNOTATION = "modeld.io/unmapped"
DEFAULT_PORT = 8000


def _defaults():
    with_probe = specs.parse_spec({"name": "x", "command": ["x"], "port": "auto", "health": {}})
    return with_probe


DEFAULTS = _defaults()


class Export:
    """One export: ``files`` (file name -> text, in output order), ``unmapped`` (losses),
    ``notes`` (approximations and steps left to the operator) and ``renames``."""

    def __init__(self, target):
        self.target = target
        self.files = {}
        self.unmapped = []
        self.notes = []
        self.renames = []

    def lose(self, field, value, why):
        self.unmapped.append({"field": field, "value": value, "why": why})

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def rename(self, kind, old, new):
        self.renames.append({"kind": kind, "from": old, "to": new})
        self.note("%s %r is renamed %r for %s" % (kind, old, new, self.target))

    @property
    def complete(self):
        return not self.unmapped

    def to_dict(self):
        return {
            "target": self.target,
            "files": dict(self.files),
            "unmapped": list(self.unmapped),
            "notes": list(self.notes),
            "renames": list(self.renames),
            "complete": self.complete,
        }

    def unmapped_summary(self):
        """One line per loss, for a comment or an annotation."""
        return [
            "%s=%s: %s" % (item["field"], _short(item["value"]), item["why"])
            for item in self.unmapped
        ]


def _short(value):
    return json.dumps(value, sort_keys=True)


def is_default(spec, section, key):
    """Is ``spec[section][key]`` what modeld would fill in on its own?"""
    return spec.get(section, {}).get(key) == DEFAULTS[section].get(key)


def ceil_seconds(value, minimum=1):
    """Seconds as the whole number most engines want, never less than ``minimum``."""
    return max(minimum, int(math.ceil(value)))


def report_fractions(export, spec, paths):
    """A note for each duration that a target can only take in whole seconds."""
    for section, key in paths:
        value = spec.get(section, {}).get(key)
        if isinstance(value, float) and value != int(value):
            export.note("%s.%s=%s is rounded up to whole seconds" % (section, key, value))


# -- names ---------------------------------------------------------------------

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(name):
    """A model name as an RFC 1035 label (a Service name): ``qwen2.5-7b`` -> ``qwen2-5-7b``."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = "m-" + label
    label = label[:63].rstrip("-")
    return label


def target_name(export, name, kind="name"):
    """``dns_label(name)``, with the rename reported when it changes anything."""
    label = dns_label(name)
    if label != name:
        export.rename(kind, name, label)
    return label


# -- ports -----------------------------------------------------------------------


def fixed_port(export, spec, chosen=None):
    """The port a target without modeld's ``auto`` uses: the spec's, ``--port``, or 8000."""
    if isinstance(spec.get("port"), int):
        return spec["port"]
    if spec.get("port") is None:
        return None
    port = chosen or DEFAULT_PORT
    export.note('port "auto" becomes %d (set another with --port)' % port)
    return port


# -- secrets -------------------------------------------------------------------


def split_env(spec):
    """``(plain, secret)``: the spec's env split by ``lib.core.redact``'s notion of a secret."""
    plain, secret = {}, {}
    for key, value in spec.get("env", {}).items():
        (secret if redact.is_secret_name(key) else plain)[key] = value
    return plain, secret


def secret_arguments(argv):
    """Indices of the arguments that ``redact.redact_argv`` would mask (values of secret flags)."""
    shown = redact.redact_argv(argv)
    return [index for index, (arg, masked) in enumerate(zip(argv, shown)) if arg != masked]


def secret_argument_name(index):
    return "MODELD_SECRET_ARG_%d" % index


def secret_value_of(argv, index):
    """The secret part of ``argv[index]``: the whole argument, or what follows ``=``."""
    arg = argv[index]
    if arg.startswith("-") and "=" in arg:
        return arg.partition("=")[2]
    return arg


def with_secret_reference(argv, index, reference):
    """``argv[index]`` with its secret part replaced by ``reference``."""
    arg = argv[index]
    if arg.startswith("-") and "=" in arg:
        return arg.partition("=")[0] + "=" + reference
    return reference


def masked(value):
    """A value the daemon hid (``***``): exported as a placeholder to fill in."""
    return value == redact.MASK


# -- GPUs ------------------------------------------------------------------------


def gpu_count(export, spec):
    """How many GPUs the model needs on the target, reporting what a count cannot carry.

    ``gpus`` ({count} | {ids}, min_free_mib, wait, shared) is optional; without it, a
    ``CUDA_VISIBLE_DEVICES`` in the env pins devices by hand and counts as its length.
    """
    gpus = spec.get("gpus") or {}
    count = 0
    if gpus.get("count"):
        count = int(gpus["count"])
    elif gpus.get("ids"):
        count = len(gpus["ids"])
        export.lose(
            "gpus.ids", gpus["ids"], "the scheduler picks the devices; only the count is kept"
        )
    visible = spec.get("env", {}).get("CUDA_VISIBLE_DEVICES")
    if not gpus and visible not in (None, ""):
        devices = [item for item in visible.split(",") if item.strip()]
        count = len(devices)
        export.lose(
            "env.CUDA_VISIBLE_DEVICES",
            visible,
            "pinned GPU ids: the scheduler picks the devices; only the count (%d) is kept" % count,
        )
    if gpus.get("min_free_mib"):
        # ``wait`` only bounds that gate: without min_free_mib it does nothing, here too.
        export.lose("gpus.min_free_mib", gpus["min_free_mib"], "no VRAM gate before a start")
        export.lose("gpus.wait", gpus.get("wait"), "no VRAM gate before a start")
    if gpus.get("shared"):
        export.lose(
            "gpus.shared", True, "GPU sharing is the cluster's configuration, not the job's"
        )
    return count


def env_without_gpu_pinning(spec, plain):
    """The plain env minus a hand-set ``CUDA_VISIBLE_DEVICES`` (the scheduler sets it)."""
    return {key: value for key, value in plain.items() if key != "CUDA_VISIBLE_DEVICES"}


# -- fields every target shares -------------------------------------------------

KNOWN_FIELDS = set(specs.TOP_LEVEL_FIELDS) | {"gpus"}


def report_unknown_fields(export, spec):
    """A field this exporter does not know (a newer spec) is reported, never dropped silently."""
    for key in sorted(set(spec) - KNOWN_FIELDS):
        export.lose(key, spec[key], "this exporter does not know the field")
    for key in ("user", "group", "extra_groups", "limits"):
        if spec.get(key):  # modeld enforces these itself; the target's own knobs differ
            export.lose(key, spec[key], "set the engine's own user and limits by hand")
    if spec.get("activation"):
        export.lose(
            "activation", spec["activation"], "no on-demand start or idle unload: it runs always"
        )


def report_backoff(export, spec, what):
    """The backoff curve: reported when the spec changes modeld's defaults."""
    for key in ("backoff_max", "reset_after"):
        if not is_default(spec, "restart", key):
            export.lose("restart." + key, spec["restart"][key], what)


def report_log_probe(export, spec):
    if "log" in spec.get("health", {}):
        export.lose("health.log", spec["health"]["log"], "no engine probes a model's output")


class Options:
    """What the operator adds that a spec does not hold (see ``modelctl export --help``)."""

    def __init__(
        self,
        image=None,
        k8s_version="1.32",
        port=None,
        modeld_path="/usr/local/bin/modeld.pyz",
        modeld_home="/var/lib/modeld",
        namespace=None,
    ):
        self.image = image
        self.k8s_version = k8s_version
        self.port = port
        self.modeld_path = modeld_path
        self.modeld_home = modeld_home
        self.namespace = namespace


def probe_free(spec):
    """No http, tcp or log probe."""
    return specs.probe_kind(spec.get("health", {})) is None

"""The export targets by name, and one export of several specs (one file set, one report)."""

from lib.core import redact
from lib.errors import ValidationError
from lib.export import common, kubernetes, nomad, slurm, systemd

PER_MODEL = {"kubernetes": kubernetes.export, "nomad": nomad.export, "systemd": systemd.export}
TARGETS = ("kubernetes", "nomad", "systemd", "slurm")


def export(specs_list, target, options):
    """One ``common.Export`` for every spec; ``ValueError`` for a bad target or option."""
    if target not in TARGETS:
        raise ValueError("unknown target %r (use %s)" % (target, ", ".join(TARGETS)))
    if target == "slurm":
        return slurm.export(specs_list, options)
    combined = common.Export(target)
    several = len(specs_list) > 1
    for spec in specs_list:
        one = PER_MODEL[target](spec, options)
        combined.files.update(one.files)
        for loss in one.unmapped:
            field = "%s: %s" % (spec["name"], loss["field"]) if several else loss["field"]
            combined.unmapped.append(dict(loss, field=field))
        for text in one.notes:
            combined.note("%s: %s" % (spec["name"], text) if several else text)
        combined.renames += one.renames
    if target == "systemd":
        combined.files["modeld.service"] = systemd.daemon_unit(options)
    return combined


QUERY_PARAMETERS = ("to", "image", "k8s_version", "port")


def export_live(spec, port, query):
    """``GET /models/{name}/export``: a deployed model's spec, its secrets masked (the daemon
    never sends them; the export says where to fill them in), its chosen port kept."""
    target = query.get("to")
    if target not in TARGETS:
        raise ValidationError("to", "must be one of: %s" % ", ".join(TARGETS))
    chosen = query.get("port")
    if chosen is not None:
        if not chosen.isdigit() or not 1 <= int(chosen) <= 65535:
            raise ValidationError("port", "must be a port number")
        port = int(chosen)
    options = common.Options(
        image=query.get("image"), k8s_version=query.get("k8s_version", "1.32"), port=port
    )
    try:
        return export([redact.redact_spec(spec)], target, options).to_dict()
    except ValueError as error:
        field = "image" if "--image" in str(error) else "k8s_version"
        raise ValidationError(field, str(error)) from None

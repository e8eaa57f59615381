"""The export targets by name, and one export of several specs (one file set, one report)."""

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

"""Text for people: the tables and lines modelctl prints (pure functions)."""


def table(rows, columns, optional, width):
    """Rows as aligned columns, dropping optional columns until the table fits ``width``."""
    columns = list(columns)
    for candidate in [None] + optional:
        if candidate is not None and candidate in columns:
            columns.remove(candidate)
        widths = {col: max([len(col)] + [len(str(row[col])) for row in rows]) for col in columns}
        if sum(widths.values()) + 2 * (len(columns) - 1) <= width:
            break
    lines = [clip("  ".join(str(col).ljust(widths[col]) for col in columns).rstrip(), width)]
    for row in rows:
        cells = [str(row[col]).ljust(widths[col]) for col in columns]
        lines.append(clip("  ".join(cells).rstrip(), width))
    return "\n".join(lines) + "\n"


def clip(line, width):
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


def human_duration(seconds):
    """``42s``, ``3m07s``, ``5h12m``, ``2d03h``."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def human_bytes(count):
    """``512B``, ``21.6MiB``."""
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return ("%d%s" % (count, unit)) if unit == "B" else "%.1f%s" % (count, unit)
        count /= 1024.0
    return "%.1fGiB" % count


def or_dash(value):
    return "-" if value is None else value


def exit_lines(model):
    """The last exit of a model payload and the lines before it, or nothing."""
    last_exit = model.get("last_exit") or {}
    if not last_exit:
        return []
    if last_exit.get("signal"):
        how = "signal %s" % last_exit["signal"]
    else:
        how = "code %s" % last_exit.get("code")
    lines = [
        "last exit: %s, reason %s, at %s" % (how, last_exit.get("reason"), last_exit.get("at"))
    ]
    if last_exit.get("cause"):
        lines.append("  cause found in the output: %s" % last_exit["cause"])
    if last_exit.get("oom_killer"):
        lines.append("  the kernel's OOM killer killed it")
    lines += ["  ! %s" % line for line in last_exit.get("first_error") or []]
    return lines + ["  | %s" % line for line in last_exit.get("last_lines") or []]


def event_line(event, with_model=False):
    """``AT  [MODEL]  FROM -> TO  REASON  (cause)``."""
    model = "%-20s " % event["model"] if with_model else ""
    transition = "%s -> %s" % (event.get("from") or "new", event["to"])
    return "%s  %s%s  %s%s" % (
        event["at"],
        model,
        transition,
        event.get("reason") or "",
        cause(event),
    )


def cause(event):
    """What caused an event: the API request, or the signal."""
    found = event.get("cause") or {}
    if found.get("method"):
        return "  (%s %s from %s, request %s)" % (
            found["method"],
            found.get("path"),
            found.get("client"),
            found.get("request_id"),
        )
    if found.get("signal"):
        return "  (%s)" % found["signal"]
    return ""


def entry_line(entry):
    """A log entry as ``TS [MODEL] STREAM LEVEL MESSAGE`` (the model for ``logs --all``)."""
    if "model" in entry:
        return "%s %-16s %-6s %-8s %s" % (
            entry["ts"],
            entry["model"],
            entry["stream"],
            entry["level"].upper(),
            entry["msg"],
        )
    return "%s %-6s %-8s %s" % (entry["ts"], entry["stream"], entry["level"].upper(), entry["msg"])


def gpu_cell(model):
    """``1,3 20.5GiB``: a model's GPU indices and the memory it holds (``?`` when unknown)."""
    if not model.get("gpus"):
        return "-"
    indices = ",".join(str(gpu["index"]) for gpu in model["gpus"])
    memory = model.get("gpu_memory_bytes")
    if memory is None:
        return indices if model.get("pid") is None else indices + " ?"
    return "%s %s" % (indices, human_bytes(memory))


def gpu_row(device):
    """A row of ``modelctl gpus``: one device, its models, and other processes holding memory."""
    others = [
        "%s(%s)" % (process["pid"], human_bytes(process["used_memory_bytes"]))
        for process in device["foreign_processes"]
    ]
    return {
        "GPU": device["index"],
        "NAME": device.get("name") or "-",
        "UUID": device["uuid"],
        "USED": human_bytes(device.get("memory_used_bytes")),
        "TOTAL": human_bytes(device.get("memory_total_bytes")),
        "UTIL%": or_dash(device.get("utilization_percent")),
        "MODELS": ",".join(device["models"]) or "-",
        "OTHERS": " ".join(others) or "-",
    }

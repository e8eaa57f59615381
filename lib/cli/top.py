"""``modelctl top``: every model's status, CPU, memory and GPU memory, refreshed in place.

The daemon's sampler measures; this only polls ``GET /models`` every ``--interval``
seconds and redraws. ``--once`` prints one table (for scripts and tests).
"""

import time

from lib.cli import render

COLUMNS = ["NAME", "STATUS", "HEALTH", "READY", "CPU%", "MEM", "GPU MEM", "RESTARTS", "UPTIME"]
OPTIONAL = ["GPU MEM", "READY", "HEALTH", "RESTARTS", "UPTIME"]
CLEAR = "\x1b[H\x1b[2J"


def add_parser(verbs, parents):
    top = verbs.add_parser(
        "top", parents=parents, help="live CPU, memory, GPU and status of every model"
    )
    top.add_argument("-a", "--all", action="store_true", help="also stopped models")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one table and exit")
    return top


def rows(models):
    found = []
    for model in models:
        metrics = model.get("metrics") or {}
        found.append(
            {
                "NAME": model["name"],
                "STATUS": model["status"],
                "HEALTH": model["health"],
                "READY": "yes" if model["ready"] else "no",
                "CPU%": render.or_dash(metrics.get("cpu_percent")),
                "MEM": render.human_bytes(metrics.get("rss_bytes")),
                "GPU MEM": render.human_bytes(metrics.get("gpu_memory_bytes")),
                "RESTARTS": model["restarts"],
                "UPTIME": render.human_duration(metrics.get("uptime_s")),
            }
        )
    found.sort(key=lambda row: (row["STATUS"] != "running", row["NAME"]))
    return found


def screen(models, width, host, now=None):
    """The text of one refresh: a header line, then the table."""
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    running = sum(1 for model in models if model["status"] == "running")
    header = "modeld at %s  %s  %d models, %d running\n\n" % (host, stamp, len(models), running)
    if not models:
        return header + "(no models)\n"
    return header + render.table(rows(models), COLUMNS, OPTIONAL, width)


def cmd_top(client, args, out, width, sleep=time.sleep):
    statuses = None if args.all else ["starting", "running", "stopping", "backoff"]
    while True:
        models = client.list(statuses)
        text = screen(models, width(), client.host)
        out.write(text if args.once else CLEAR + text)
        out.flush()
        if args.once:
            return 0
        sleep(args.interval)

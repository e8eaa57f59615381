"""One entry for every role of modeld.pyz: daemon, client (``ctl`` or a ``modelctl``
link), and the per-model monitor. Imports only what the chosen role needs."""

import os
import sys


def main(argv=None):
    argv = sys.argv if argv is None else argv
    invoked = os.path.basename(argv[0]) if argv else ""
    if invoked.startswith("modelctl"):
        from lib.cli import modelctl

        return modelctl.main(argv[1:])
    if argv[1:2] == ["monitor"]:
        # Before lib.cli.modeld: a monitor runs per model, so it must not pay for the
        # daemon's parser, configuration checks (ipaddress) or rate limiter (threading).
        from lib.monitor import loop

        return loop.main(argv[2:])
    if argv[1:2] == ["monitor-zygote"]:
        from lib.monitor import zygote

        return zygote.serve()
    if argv[1:2] == ["ctl"]:
        from lib.cli import modelctl

        return modelctl.main(argv[2:])
    from lib.cli import modeld

    return modeld.main(argv[1:])

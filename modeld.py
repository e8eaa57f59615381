#!/usr/bin/env python3
"""modeld: the daemon (``modeld start|stop|status|run``); ``modeld ctl VERB`` is modelctl."""

import sys

from lib.core.interpreter import require_python

if __name__ == "__main__":
    require_python("modeld")  # before importing code an old interpreter cannot parse
    from lib.cli.entry import main

    sys.exit(main())

#!/usr/bin/env python3
"""modeld: the daemon (``modeld start|stop|status|run``); ``modeld ctl VERB`` is modelctl."""

import sys

from lib.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())

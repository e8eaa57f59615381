#!/usr/bin/env python3
"""modelctl: the command-line client of modeld (argparse + urllib only)."""

import sys

from lib.cli.modelctl import main

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""modelctl: the command-line client of modeld (argparse + urllib only)."""

import sys

from lib.core.interpreter import require_python

if __name__ == "__main__":
    require_python("modelctl")  # before importing code an old interpreter cannot parse
    from lib.cli.modelctl import main

    sys.exit(main())

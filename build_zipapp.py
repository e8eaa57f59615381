#!/usr/bin/env python3
"""Build dist/modeld.pyz: daemon, client, monitor and their runtime dependencies in one file.

    python3 build_zipapp.py [--output dist/modeld.pyz]

pip installs the pinned packages of requirements.txt into a staging folder;
they are zipped with modeld.py, modelctl.py and lib/ behind a
``#!/usr/bin/env python3`` line. The archive is reproducible: entries sorted,
every timestamp 1980-01-01 (or $SOURCE_DATE_EPOCH), fixed permissions, no
.pyc, no path of the build machine inside; two builds are byte-identical.

The result runs with any python3 >= 3.9, also under ``python3 -I``:
``./modeld.pyz start``, ``./modeld.pyz ctl ps``, and as ``modelctl`` through a
link of that name.
"""

import argparse
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = b'''"""modeld.pyz: ./modeld.pyz start|stop|status|run, ./modeld.pyz ctl VERB, or modelctl."""

import os
import sys

from lib.core.interpreter import require_python

# Every role (daemon, modelctl, each monitor) starts here: refuse an old Python first.
require_python("modelctl" if os.path.basename(sys.argv[0]).startswith("modelctl") else "modeld")

from lib.cli.entry import main  # noqa: E402 - after the interpreter check, on purpose

sys.exit(main())
'''
# Not needed at run time: tests of the dependencies, compiled files, typing stubs, pip's notes.
SKIP_PARTS = ("__pycache__", "test", "tests")
SKIP_SUFFIXES = (".pyc", ".pyo", ".pyi", "py.typed")
SKIP_DIST_INFO = (
    "RECORD",
    "INSTALLER",
    "REQUESTED",
    "direct_url.json",
    "WHEEL",
    "entry_points.txt",
)
MAX_SIZE = 1024 * 1024


def install_dependencies(staging):
    """pip install the pinned runtime dependencies (no compiling, wheels only)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            staging,
            "-r",
            os.path.join(ROOT, "requirements.txt"),
        ],
        check=True,
    )


def wanted(relative):
    parts = relative.split(os.sep)
    if any(part in SKIP_PARTS for part in parts[:-1]) or relative.endswith(SKIP_SUFFIXES):
        return False
    if parts[0].endswith(".dist-info") and parts[-1] in SKIP_DIST_INFO:
        return False
    return not parts[0].endswith(".egg-info") and parts[0] != "bin"


def collect(folder, prefix=""):
    """``{archive name: file path}`` of the files under ``folder`` that belong in the archive."""
    found = {}
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        for name in files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder)
            if wanted(relative):
                found[prefix + relative.replace(os.sep, "/")] = path
    return found


def namespace_inits(files):
    """Empty ``__init__.py`` files for namespace packages (``jaraco``).

    Python 3.9's zipimport cannot import a namespace package from a zip, so
    each directory of Python modules that lacks one gets an empty one.
    """
    packages = set()
    for name in files:
        parts = name.split("/")[:-1]
        if name.endswith(".py") and parts and not parts[0].endswith(".dist-info"):
            packages.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    missing = {d + "/__init__.py" for d in packages} - set(files)
    return {name: b"" for name in sorted(missing)}


def sources():
    """The project's own files: the package and the two entry points."""
    found = collect(os.path.join(ROOT, "lib"), "lib/")
    for name in ("modeld.py", "modelctl.py", "LICENSE"):
        found[name] = os.path.join(ROOT, name)
    return found


def fixed_time():
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01, zip's earliest
    return time.gmtime(max(epoch, 315532800))[:6]


def write_archive(target, files):
    """Shebang, then a zip of ``files`` (+ __main__.py) in sorted order with fixed metadata."""
    stamp = fixed_time()
    entries = {name: _read(path) for name, path in files.items()}
    entries.update(namespace_inits(files))
    entries["__main__.py"] = MAIN
    with open(target, "wb") as handle:
        handle.write(SHEBANG)
        with zipfile.ZipFile(handle, "w") as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, whatever builds it
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                archive.writestr(info, entries[name], compresslevel=9)
    os.chmod(target, 0o755)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def build(output):
    staging = tempfile.mkdtemp(prefix="modeld-build-")
    try:
        install_dependencies(staging)
        files = collect(staging)
        clash = set(files) & set(sources())
        if clash:
            raise SystemExit("a dependency would shadow our own files: %s" % sorted(clash))
        files.update(sources())
        _check_paths(files, (staging, ROOT))
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        temporary = output + ".tmp"
        write_archive(temporary, files)
        if os.path.getsize(temporary) > MAX_SIZE:
            raise SystemExit(
                "the archive is %d bytes, over the 1 MiB budget" % os.path.getsize(temporary)
            )
        os.replace(temporary, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _check_paths(files, build_paths):
    """No file may carry a path of the build machine (it would make builds differ)."""
    for name, path in files.items():
        content = _read(path)
        for leak in build_paths:
            if leak.encode() in content:
                raise SystemExit("%s names the build path %s" % (name, leak))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "dist", "modeld.pyz"))
    args = parser.parse_args(argv)
    output = build(args.output)
    data = _read(output)
    print("built %s: %d bytes, sha256 %s" % (output, len(data), hashlib.sha256(data).hexdigest()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Fetch CPython 3.9 from Debian bullseye into a folder, without root and without
# touching the system's apt state: a private sources list and lists directory,
# `apt-get download`, `dpkg -x`. Prints the path of a wrapper that runs it
# (it sets LD_LIBRARY_PATH; PYTHONHOME is not needed).
#
#   tools/get-python3.9.sh [DEST]      (default: .cache/python3.9; idempotent)
set -euo pipefail
dest=$(realpath -m "${1:-.cache/python3.9}")
wrapper="$dest/python3.9"
if [ -x "$wrapper" ] && "$wrapper" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
    echo "$wrapper"
    exit 0
fi
apt_dir="$dest/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest/debs" "$dest/root"
cat > "$apt_dir/sources.list" <<SOURCES
deb http://deb.debian.org/debian bullseye main
deb http://deb.debian.org/debian-security bullseye-security main
SOURCES
options=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
    -qq
)
apt-get "${options[@]}" update >&2
(cd "$dest/debs" && apt-get "${options[@]}" download \
    python3.9-minimal libpython3.9-minimal libpython3.9-stdlib libssl1.1 libffi7 libmpdec3 >&2)
for deb in "$dest"/debs/*.deb; do
    dpkg -x "$deb" "$dest/root"
done
arch_lib=$(ls -d "$dest"/root/usr/lib/*-linux-gnu | head -n 1)
cat > "$wrapper" <<WRAPPER
#!/bin/sh
# The interpreter finds its standard library from its own location; only its
# extension modules need the bundled libssl1.1, libffi7 and libmpdec3.
LD_LIBRARY_PATH="$arch_lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dest/root/usr/bin/python3.9" "\$@"
WRAPPER
chmod +x "$wrapper"
"$wrapper" -c 'import sys, ssl, json, zipimport; assert sys.version_info[:2] == (3, 9)' >&2
echo "$wrapper"

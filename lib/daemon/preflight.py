"""Checks before anything is spawned: the executable resolves, cwd exists, the port is free.

Each failure is a 4xx naming the problem, and nothing is started. Reads the
machine (file system, sockets, /proc), so it sits apart from the pure parser.
"""

import errno
import os
import shutil
import socket

from lib.errors import PortInUseError, ValidationError


def check_cwd(spec):
    cwd = spec["cwd"]
    if not os.path.isdir(cwd):
        raise ValidationError("cwd", "no such directory: %s" % cwd)
    if not os.access(cwd, os.X_OK):
        raise ValidationError("cwd", "permission denied: %s" % cwd)


def resolve_executable(spec, environ):
    """The path the model's ``command[0]`` resolves to, with the model's PATH and cwd."""
    program = spec["command"][0]
    path = spec["env"].get("PATH", environ.get("PATH", os.defpath))
    if "/" in program:
        candidate = program if os.path.isabs(program) else os.path.join(spec["cwd"], program)
        if not os.path.exists(candidate):
            raise ValidationError("command[0]", "no such file: %s" % candidate)
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            raise ValidationError(
                "command[0]", "not executable (permission denied): %s" % candidate
            )
        return candidate
    found = shutil.which(program, path=path)
    if found is None:
        raise ValidationError(
            "command[0]", "executable %r not found in PATH (%s)" % (program, path), path=path
        )
    return found


def port_is_free(port):
    """Can a server bind ``port`` on every address right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR, so a port in TIME_WAIT is free for them too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_free_port(taken):
    """A port the kernel says is free and no other deployment has claimed."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("0.0.0.0", 0))
            port = probe.getsockname()[1]
        if port not in taken:
            return port
    raise PortInUseError("no free port found")


def check_port(port, taken_by):
    """Raise ``PortInUseError`` naming the holder if ``port`` is claimed or bound."""
    if port in taken_by:
        raise PortInUseError(
            "port %d is already used by model %r" % (port, taken_by[port]),
            port=port,
            holder={"model": taken_by[port]},
        )
    if not port_is_free(port):
        holder = port_holder(port)
        who = ""
        if holder:
            who = " by %s (pid %d)" % (holder["command"], holder["pid"])
        raise PortInUseError("port %d is already in use%s" % (port, who), port=port, holder=holder)


def port_holder(port):
    """``{"pid", "command"}`` of the process listening on ``port``, when /proc tells."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        if inodes & _socket_links("/proc/%s/fd" % entry):
            try:
                with open("/proc/%s/comm" % entry) as handle:
                    command = handle.read().strip()
            except OSError:
                command = "?"
            return {"pid": int(entry), "command": command}
    return None


def _socket_links(fd_dir):
    links = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return links  # another user's process, or it exited
    for fd in fds:
        try:
            links.add(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return links


def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % inode)
        except OSError:
            continue
    return inodes

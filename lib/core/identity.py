"""Who a model runs as: the spec's ``user``, ``group`` and ``extra_groups``, resolved.

Three layers, each testable alone:

- ``parse_run_as`` (pure) validates the spec's fields: a name or a numeric id each.
- ``resolve`` reads the user and group databases (``pwd``, ``grp``) into a ``RunAs``:
  uid, gid, the user's supplementary groups from the group database plus
  ``extra_groups`` (``video``/``render`` for GPU device nodes), and the home directory.
- ``check_may_switch`` refuses what the daemon cannot do: a daemon that is not root
  can run a model only as itself.

The monitor stays as the daemon's user (it owns the pipes and the log files) and
drops privileges in the model's child between fork and exec (``drop_privileges``);
``environment`` makes ``HOME``, ``USER`` and ``LOGNAME`` follow the user. The
permission checks of preflight (``may_execute``, ``may_enter``) read mode bits, not
ACLs: ``os.access`` answers for the daemon's uid, and forking a checker from an
HTTP thread is not allowed.
"""

import collections
import os
import stat

from lib.errors import ValidationError

MAX_EXTRA_GROUPS = 32

RunAs = collections.namedtuple("RunAs", "user uid gid groups home")
RunAs.__doc__ = """A resolved identity: ``user`` (name), ``uid``, ``gid``, ``groups``
(supplementary gids, sorted), ``home`` (the passwd entry's directory)."""


def parse_run_as(body):
    """``{"user", "group", "extra_groups"}`` from a deploy body (``None`` / ``[]`` if unset)."""
    return {
        "user": _principal(body.get("user"), "user"),
        "group": _principal(body.get("group"), "group"),
        "extra_groups": _extra_groups(body.get("extra_groups")),
    }


def _principal(value, field):
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(field, "must be a name or a numeric id")
    if isinstance(value, int):
        if not 0 <= value < 2**32 - 1:
            raise ValidationError(field, "must be an id from 0 to 4294967294")
        return value
    if not isinstance(value, str) or not value or len(value) > 256 or "\x00" in value:
        raise ValidationError(field, "must be a name or a numeric id")
    return int(value) if value.isdigit() else value


def _extra_groups(value):
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_EXTRA_GROUPS:
        raise ValidationError(
            "extra_groups", "must be a list of at most %d group names or ids" % MAX_EXTRA_GROUPS
        )
    return [_principal(item, "extra_groups[%d]" % n) for n, item in enumerate(value)]


def is_set(spec):
    """Does the spec ask for an identity other than the monitor's own?"""
    return spec.get("user") is not None or spec.get("group") is not None


def resolve(spec):
    """The ``RunAs`` of a spec whose ``user`` or ``group`` is set (``None`` if neither is).

    A ``ValidationError`` names the field that does not resolve.
    """
    if not is_set(spec):
        return None
    import grp  # here: the client never needs the user databases
    import pwd

    entry = _user_entry(spec.get("user"), pwd)
    if entry is None:
        uid, name, home, gid = os.getuid(), _own_name(pwd), _own_home(pwd), os.getgid()
    else:
        uid, name, home, gid = entry.pw_uid, entry.pw_name, entry.pw_dir, entry.pw_gid
    if spec.get("group") is not None:
        gid = _group_id(spec["group"], "group", grp)
    groups = set(_member_of(name, grp)) if entry is not None else set()
    groups.update(
        _group_id(item, "extra_groups[%d]" % n, grp)
        for n, item in enumerate(spec.get("extra_groups") or [])
    )
    groups.add(gid)
    return RunAs(name, uid, gid, tuple(sorted(groups)), home)


def _user_entry(user, pwd):
    if user is None:
        return None
    try:
        return pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    except KeyError:
        raise ValidationError("user", "no such user: %s" % user) from None


def _group_id(group, field, grp):
    if isinstance(group, int):
        return group  # a gid need not have a name (as with `chown :1234`)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValidationError(field, "no such group: %s" % group) from None


def _member_of(name, grp):
    return [entry.gr_gid for entry in grp.getgrall() if name in entry.gr_mem]


def _own_name(pwd):
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _own_home(pwd):
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return "/"


def check_may_switch(spec, run_as, euid=None, own_groups=None):
    """Refuse (400 naming the field) an identity a daemon that is not root cannot take."""
    euid = os.geteuid() if euid is None else euid
    if run_as is None or euid == 0:
        return
    if run_as.uid != euid:
        raise ValidationError(
            "user",
            "modeld runs as uid %d, not root: it can run models only as itself "
            "(run it as root, or drop the field)" % euid,
        )
    own = set(os.getgroups() if own_groups is None else own_groups) | {os.getegid()}
    if run_as.gid not in own:
        raise ValidationError("group", "modeld is not root and is not in group %d" % run_as.gid)
    for n, gid in enumerate(spec.get("extra_groups") or []):
        if isinstance(gid, int) and gid not in own:
            raise ValidationError("extra_groups[%d]" % n, "modeld is not root and not in it")


def environment(run_as):
    """``HOME``, ``USER`` and ``LOGNAME`` of the user (empty without one)."""
    if run_as is None:
        return {}
    return {"HOME": run_as.home, "USER": run_as.user, "LOGNAME": run_as.user}


def drop_privileges(run_as):
    """In the model's child, between fork and exec: become ``run_as`` for good."""
    os.setgroups(list(run_as.groups))
    os.setresgid(run_as.gid, run_as.gid, run_as.gid)
    os.setresuid(run_as.uid, run_as.uid, run_as.uid)


# -- may this identity use a path? (mode bits along the path; ACLs are not read) ------


def _permits(info, run_as, bit):
    """Does ``info`` (an ``os.stat_result``) give ``run_as`` the permission ``bit`` (r=4, x=1)?"""
    if run_as.uid == 0:
        if bit != 1 or stat.S_ISDIR(info.st_mode):
            return True
        return bool(info.st_mode & 0o111)  # root executes a file only if some x bit is set
    if info.st_uid == run_as.uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid in run_as.groups:
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def blocked_at(path, run_as, final_bit):
    """The first component of ``path`` that ``run_as`` may not pass (``None``: allowed).

    Every directory on the way needs search (x); the last component needs ``final_bit``.
    """
    path = os.path.abspath(path)
    parts = path.split("/")[1:]
    current = "/"
    for index, part in enumerate(parts):
        if not _permits(os.stat(current), run_as, 1):
            return current
        current = os.path.join(current, part)
        if index == len(parts) - 1 and not _permits(os.stat(current), run_as, final_bit):
            return current
    return None


def may_execute(path, run_as):
    """``None`` if ``run_as`` can execute ``path``, else the component in the way."""
    real = os.path.realpath(path)
    return blocked_at(path, run_as, 1) or blocked_at(real, run_as, 1)


def may_enter(directory, run_as):
    """``None`` if ``run_as`` can make ``directory`` its cwd, else the component in the way."""
    return blocked_at(directory, run_as, 1)

"""Read-only facts for the jobs role, gathered on the host in one run before anything there changes:
which users exist; for each job path where it leads, whether it is a directory, its owner and whether
it is empty; the systemd version and which OnCalendar expressions systemd-analyze refuses; which Debian
packages are installed; type, mode, owner, group and SHA-1 of each file the role manages; what the
role's directories hold; and each timer's state. Input: one JSON argument (plugins/module_utils/jobs.py
host_inspection); output: JSON on stdout. The rules applied to these facts are the collection's
(plugins/module_utils/jobs.py host_problems and host_changes)."""

import fnmatch
import grp
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys


def user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def path_facts(path):
    real = os.path.realpath(path)
    try:
        status = os.stat(real)
    except OSError:
        return {"real": real, "exists": False}
    facts = {"real": real, "exists": True, "isdir": os.path.isdir(real), "owner": owner_name(status.st_uid), "empty": None}
    if facts["isdir"]:
        with os.scandir(real) as entries:
            facts["empty"] = next(entries, None) is None
    return facts


def owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_facts(path):
    """What Ansible's file, copy and template would compare: a directory is followed through a
    symlink (as the file module does), a file is not (the role then rewrites it)."""
    try:
        status = os.lstat(path)
        if stat.S_ISLNK(status.st_mode) and os.path.isdir(path):
            status = os.stat(path)
    except OSError:
        return {"type": None}
    kind = "directory" if stat.S_ISDIR(status.st_mode) else "file" if stat.S_ISREG(status.st_mode) else "other"
    facts = {"type": kind, "mode": "%04o" % stat.S_IMODE(status.st_mode), "owner": owner_name(status.st_uid), "group": group_name(status.st_gid)}
    if kind == "file":
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        facts["sha1"] = digest.hexdigest()
    return facts


def run(argv):
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    except OSError as error:
        return 127, "", str(error)
    return done.returncode, done.stdout, done.stderr


def systemd_version():
    code, out, err = run(["systemctl", "--version"])
    words = out.split()
    if code != 0 or len(words) < 2 or not words[1].isdigit():
        raise SystemExit("cannot read the systemd version from systemctl --version: %s" % (err.strip() or out.strip()))
    return int(words[1])


def calendar_error(expression):
    """None when systemd-analyze accepts the OnCalendar expression, else its complaint."""
    code, out, err = run(["systemd-analyze", "calendar", "--", expression])
    return None if code == 0 else (err.strip() or out.strip() or "exit status %d" % code)


def installed_packages(names):
    if not names:
        return {}
    # dpkg-query exits 1 when one is unknown: its output still lists the others.
    out = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", "--"] + list(names))[1]
    status = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {name: status.get(name) == "installed" for name in names}


def listing(spec):
    """Files under a directory (relative paths, recursively), its subdirectories, or the names in it
    matching patterns; None when it does not exist."""
    top = spec["path"]
    if not os.path.isdir(top):
        return None
    if spec["what"] == "files":
        found = []
        for folder, directories, files in os.walk(top):
            directories.sort()
            found.extend(os.path.relpath(os.path.join(folder, name), top) for name in files)
        return sorted(found)
    names = sorted(os.listdir(top))
    if spec["what"] == "directories":
        return [name for name in names if os.path.isdir(os.path.join(top, name)) and not os.path.islink(os.path.join(top, name))]
    return [name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in spec["patterns"])]


def timer_state(name):
    """As ansible.builtin.systemd_service judges it: enabled when is-enabled succeeds with a state it
    would not enable again; running when active or activating."""
    enabled = run(["systemctl", "is-enabled", "-l", name])
    active = run(["systemctl", "show", "--property=ActiveState", "--", name])[1]
    return {"enabled": enabled[0] == 0 and enabled[1].strip() not in ("enabled-runtime", "indirect", "alias"), "active": active.strip().partition("=")[2]}


def main():
    wanted = json.loads(sys.argv[1])
    facts = {
        "users": {name: user_exists(name) for name in wanted["users"]},
        "paths": {path: path_facts(path) for path in wanted["paths"]},
    }
    if "schedules" in wanted:
        facts["systemd_version"] = systemd_version()
        facts["schedules"] = {expression: calendar_error(expression) for expression in wanted["schedules"]}
        facts["packages"] = installed_packages(wanted["packages"])
        facts["files"] = {path: file_facts(path) for path in wanted["files"]}
        facts["listings"] = {key: listing(spec) for key, spec in wanted["listings"].items()}
        facts["timers"] = {name: timer_state(name) for name in wanted["timers"]}
    json.dump(facts, sys.stdout)


if __name__ == "__main__":
    main()

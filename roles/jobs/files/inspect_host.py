"""Read-only facts for the jobs role's checks, run on the host before anything there changes: which
users exist, and for each path where it leads, whether it is a directory, its owner and whether it is
empty. Input: one JSON argument {"users": [...], "paths": [...]}; output: JSON on stdout. The rules
applied to these facts are the collection's (plugins/module_utils/jobs.py host_problems)."""

import json
import os
import pwd
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
    try:
        owner = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        owner = str(status.st_uid)
    facts = {"real": real, "exists": True, "isdir": os.path.isdir(real), "owner": owner, "empty": None}
    if facts["isdir"]:
        with os.scandir(real) as entries:
            facts["empty"] = next(entries, None) is None
    return facts


def main():
    wanted = json.loads(sys.argv[1])
    json.dump({"users": {name: user_exists(name) for name in wanted["users"]}, "paths": {path: path_facts(path) for path in wanted["paths"]}}, sys.stdout)


if __name__ == "__main__":
    main()

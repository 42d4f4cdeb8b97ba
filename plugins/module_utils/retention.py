# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention, decided on the control node: which stream and archive run folders a job's ``keep``
keeps (restic's ``forget`` semantics), and which duplicity chains a duplicity job's ``retention``
keeps (duplicity's ``remove-all-but-n-full`` and ``remove-older-than`` semantics). Pure functions, no
AWS calls: the prune module lists the bucket and deletes what ``select_runs``, ``select_incomplete``
and ``select_chains`` leave out, so no host needs delete rights.

A run is kept when any rule keeps it:
- ``last: N``      the N newest complete runs;
- ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly: N``  the newest run of each of the N
                   newest hours, days, ISO weeks, months, years (UTC) that have a run; a period without
                   a run does not count, so a job that stopped keeps what it has;
- ``within: D``    every run started at most D before the newest complete run (not before now: a job
                   that stopped is never pruned away);
and always, whatever the policy: the newest complete run, and every run younger than the job's
max_age (counted from the later of its folder's time and when S3 stored its manifest).

Runs are bucketed by their folder's time (when the run started, UTC), the time the operator sees in
the key. Suspicious runs (see backups.forged_reasons) never reach this module: they are evidence."""

from __future__ import annotations

import re

from ansible_collections.systemd_s3.backup.plugins.module_utils.backups import CLOCK_SKEW_TOLERANCE
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups import parse_duration
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

# The rules that count runs, in the order restic applies (and reports) them.
COUNT_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
KEEP_OPTIONS = COUNT_RULES + ("within",)
MAX_COUNT = 100000
# The periods of the calendar rules, as the text that names one period (UTC).
PERIOD_FORMATS = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}
# The methods whose run folders a policy prunes, and why the others take no keep.
METHODS = ("stream", "archive")
NOT_FOR = {
    "sync": (
        "is not for sync jobs: every run of a sync job updates one mirror in <job>/data/, so there are no per-run copies to prune; the"
        " older versions of its files are the bucket's noncurrent versions, which noncurrent_version_expiration_days (bucket module,"
        " aws_backup_noncurrent_version_expiration_days) expires, and its run folders hold only a small manifest each",
        "Remove keep from this job; bound the mirror's history with noncurrent_version_expiration_days",
    ),
    "duplicity": (
        "is not for duplicity jobs: duplicity's sets form chains, which are kept or deleted whole",
        "Remove keep and use retention: {keep_full: N} or {older_than: 6M}",
    ),
}
EXAMPLE = "{last: 7, daily: 14, weekly: 8, monthly: 12, yearly: 3} or {within: 90d}"


def _count(field, value):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # templating yields strings
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise InputError(field, f"{value!r} is not a whole number from 1 to {MAX_COUNT}", "Give how many to keep, or leave the rule out")
    return value


def keep_policy(field, value, method):
    """The job field ``keep`` as {rule: count, ..., "within": "90d"}, only the rules given; raises
    InputError naming ``field`` (jobs[<job>].keep) or its rule (jobs[<job>].keep.daily)."""
    if method in NOT_FOR:
        raise InputError(field, *NOT_FOR[method])
    if not isinstance(value, dict):
        raise InputError(field, f"must be a mapping of rules, not {type(value).__name__}", f"Write e.g. {EXAMPLE}")
    unknown = sorted(str(name) for name in value if name not in KEEP_OPTIONS)
    if unknown:
        raise InputError(f"{field}.{unknown[0]}", "is not a rule of keep (misspelt?)", f"Use {', '.join(KEEP_OPTIONS)}")
    policy = {name: _count(f"{field}.{name}", value[name]) for name in COUNT_RULES if value.get(name) is not None}
    if value.get("within") is not None:
        policy["within"] = str(value["within"]).strip()
        parse_duration(policy["within"], f"{field}.within")
    if not policy:
        raise InputError(field, "sets no rule, which would delete every run but the newest", f"Set at least one rule, e.g. {EXAMPLE}")
    return policy


def period(rule, moment):
    """The period of a calendar rule ``moment`` (UTC) falls in, as text: 2026-11-22, 2026-W47, ..."""
    if rule == "weekly":
        year, week, _day = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime(PERIOD_FORMATS[rule])


def _age_moment(run):
    """The later of the run's folder time and S3's time of its manifest: a run counts as young when
    either says so."""
    return max(moment for moment in (run["started"], run.get("stored")) if moment is not None)


def select_runs(runs, policy, now, max_age_seconds):
    """Which complete runs ``policy`` (keep_policy's form) keeps. ``runs`` are
    {"run": folder name, "started": its time, "stored": S3's time of its manifest}, in any order.
    Returns (kept, deleted): kept maps a folder name to the reasons that keep it, deleted lists the
    other folder names, oldest first."""
    ordered = sorted(runs, key=lambda run: (run["started"], run["run"]), reverse=True)  # newest first
    kept = {}

    def keep(run, reason):
        kept.setdefault(run["run"], []).append(reason)

    if not ordered:
        return kept, []
    keep(ordered[0], "the newest complete backup")
    # The newest by S3's time too, should a host's clock have put a later run in an earlier folder.
    stored = [run for run in ordered if run.get("stored") is not None]
    if stored:
        newest_stored = max(stored, key=lambda run: (run["stored"], run["run"]))
        if newest_stored is not ordered[0]:
            keep(newest_stored, "the newest complete backup S3 stored")
    for run in ordered:
        if (now - _age_moment(run)).total_seconds() <= max_age_seconds:
            keep(run, "younger than the job's max_age")
    for index, run in enumerate(ordered[: policy.get("last", 0)]):
        keep(run, f"last {index + 1}")
    for rule in COUNT_RULES[1:]:
        remaining, previous = policy.get(rule, 0), None
        for run in ordered:
            if not remaining:
                break
            current = period(rule, run["started"])
            if current != previous:
                keep(run, f"{rule} {current}")
                previous, remaining = current, remaining - 1
    if "within" in policy:
        limit = ordered[0]["started"].timestamp() - parse_duration(policy["within"], "keep.within")
        for run in ordered:
            if run["started"].timestamp() >= limit:
                keep(run, f"within {policy['within']} of the newest")
    deleted = [run["run"] for run in reversed(ordered) if run["run"] not in kept]
    return kept, deleted


def select_incomplete(runs, now, after_seconds, max_age_seconds):
    """Which incomplete runs (folders without a manifest: failed or interrupted, or still running)
    may go: those whose folder time and newest object are both more than ``after_seconds`` and the
    job's max_age old. ``runs`` are {"run", "started", "stored": the newest object's S3 time or
    None}. None for ``after_seconds`` keeps them all. Returns the folder names, oldest first."""
    if after_seconds is None:
        return []
    limit = max(after_seconds, max_age_seconds)
    ordered = sorted(runs, key=lambda run: (run["started"], run["run"]))
    return [run["run"] for run in ordered if (now - _age_moment(run)).total_seconds() > limit]


# ---------------------------------------------------------------------------------------------- duplicity

# duplicity's interval units (duplicity/dup_time.py, _interval_conv_dict): a month is 30 days, a year 365.
DUPLICITY_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
_DUPLICITY_INTERVAL_PART = re.compile(r"(\d+)([smhDWMY])")


def duplicity_interval_seconds(interval):
    """Seconds of a duplicity interval as contract.duplicity_interval accepts it (``6M``, ``1Y2W``)."""
    return sum(int(count) * DUPLICITY_UNIT_SECONDS[unit] for count, unit in _DUPLICITY_INTERVAL_PART.findall(interval))


def duplicity_chains(files):
    """duplicity's files of one job grouped into chains, linked as duplicity links them
    (dup_collections.BackupChain): a chain starts at a complete full set (its manifest and a volume) and
    takes each complete incremental set, oldest first, whose start is the chain's end so far; signatures
    go with their set. ``files`` are {"key", "name": backups.parse_duplicity_name(...), "size",
    "modified"}. Returns (chains oldest first, keys of every other file: incomplete sets (an interrupted
    upload), incrementals that link to no chain and their signatures, which retention never deletes).
    A chain is {"full": the full set's time, "end": its newest set's time, "keys": full manifest first (its
    commit marker), "size", "modified": the newest LastModified, "sets": how many sets}."""
    sets = {}
    for entry in files:
        name = entry["name"]
        entries = sets.setdefault((name["kind"], name["start"], name["end"]), {"manifest": [], "volume": [], "signatures": []})
        entries[name["part"]].append(entry)
    complete = sorted(
        (identity for identity, parts in sets.items() if parts["manifest"] and parts["volume"]),
        key=lambda identity: (identity[2], identity[0] != "full"),  # by end time, a full before an incremental of its time
    )
    chains, by_end = [], {}
    for kind, start, end in complete:
        if kind == "full":
            chain = {"full": end, "end": end, "keys": [], "size": 0, "modified": None, "sets": []}
            chains.append(chain)
        else:
            chain = by_end.pop(start, None)
            if chain is None:
                continue  # links to nothing: left alone, as duplicity leaves an orphaned incremental
            chain["end"] = end
        chain["sets"].append((kind, start, end))
        by_end[end] = chain
    linked = set()
    for chain in chains:
        for identity in chain["sets"]:
            linked.add(identity)
            parts = sets[identity]
            ordered = sorted(parts["manifest"], key=lambda item: item["key"]) + sorted(parts["volume"] + parts["signatures"], key=lambda item: item["key"])
            for entry in ordered:
                chain["keys"].append(entry["key"])
                chain["size"] += entry.get("size") or 0
                if entry.get("modified") is not None:
                    chain["modified"] = max(moment for moment in (chain["modified"], entry["modified"]) if moment is not None)
        chain["sets"] = len(chain["sets"])
    others = sorted(entry["key"] for identity, parts in sets.items() if identity not in linked for entries in parts.values() for entry in entries)
    return sorted(chains, key=lambda chain: chain["full"]), others


def select_chains(chains, policy, now, max_age_seconds, suspicious=()):
    """Which of duplicity_chains' chains a job's ``retention`` ({"keep_full": N} or {"older_than": "6M"})
    keeps, as duplicity's remove-all-but-n-full and remove-older-than would, and more cautiously: the
    newest trusted chain (duplicity's active one) and every chain after it, every chain touched within
    the job's max_age (by the newest of its set times and S3's LastModified), and every chain holding a
    set in ``suspicious`` (the full times of such chains: evidence) always stay. Evidence, a chain whose
    full backup is dated after ``now`` (past the clock skew tolerance) and one dated inside an older
    chain's span stay and never count as the active chain nor toward keep_full: a leaked host key's
    forged chain cannot push real ones out. Returns (kept:
    {full time: reasons}, deleted: chains oldest first)."""
    ordered = sorted(chains, key=lambda chain: chain["full"], reverse=True)  # newest first
    kept = {}

    def keep(chain, reason):
        kept.setdefault(chain["full"], []).append(reason)

    latest = now + CLOCK_SKEW_TOLERANCE
    # duplicity only ever adds to its newest chain: a full dated inside an older chain's span was put there later.
    inside = {chain["full"] for chain in ordered if any(other["full"] < chain["full"] < other["end"] for other in ordered)}
    for chain in ordered:
        if chain["full"] in suspicious:
            keep(chain, "holds a suspicious set (evidence)")
        elif chain["full"] > latest:
            keep(chain, "dated after now (evidence)")
        elif chain["full"] in inside:
            keep(chain, "dated inside an older chain (evidence)")
    trusted = [chain for chain in ordered if chain["full"] not in kept]
    if not trusted:
        for chain in ordered:
            keep(chain, "no trusted full backup")
        return kept, []
    active = trusted[0]
    for chain in ordered:
        if chain["full"] >= active["full"] and chain["full"] not in kept:
            keep(chain, "the newest complete chain" if chain is active else "newer than the newest complete chain")
        moments = [moment for moment in (chain["end"], chain["modified"]) if moment is not None]
        if (now - max(moments)).total_seconds() <= max_age_seconds:
            keep(chain, "younger than the job's max_age")
    if "keep_full" in policy:
        if len(trusted) <= policy["keep_full"]:
            for chain in ordered:
                keep(chain, f"keep_full {policy['keep_full']}: not more full chains than that")  # as duplicity: nothing to remove
        for index, chain in enumerate(trusted[: policy["keep_full"]]):
            keep(chain, f"keep_full {index + 1}")
    else:
        limit = now.timestamp() - duplicity_interval_seconds(policy["older_than"])
        for chain in ordered:
            if chain["end"].timestamp() >= limit:
                keep(chain, f"ends within older_than {policy['older_than']}")
    deleted = [chain for chain in reversed(ordered) if chain["full"] not in kept]
    return kept, deleted

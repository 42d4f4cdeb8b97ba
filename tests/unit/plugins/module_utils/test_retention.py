"""The prune module's pure logic (plugins/module_utils/retention.py): the job field keep, and which
runs a policy keeps, with restic forget's semantics and the guarantees no policy can override."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import jobs
from ansible_collections.systemd_s3.backup.plugins.module_utils import retention
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

UTC = datetime.timezone.utc
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)  # a Thursday
STREAM = {"name": "pg", "method": "stream", "command": "pg_dumpall"}


def runs_at(*moments):
    """Complete runs started at ``moments``, stored three minutes later."""
    return [{"run": moment.strftime("%Y%m%dT%H%M%SZ"), "started": moment, "stored": moment + datetime.timedelta(minutes=3)} for moment in moments]


def daily(count, first=NOW - HOUR * 10):
    """A run each day at 02:00, the newest ``first``, going back ``count`` days."""
    return runs_at(*(first - index * DAY for index in range(count)))


def names(runs):
    return [run["run"] for run in runs]


def select(runs, policy, max_age="1s", now=NOW):
    return retention.select_runs(runs, policy, now, jobs.parse_duration(max_age))


# ---------------------------------------------------------------------------------------------- keep, as checked


def test_keep_takes_counts_as_numbers_or_templated_strings_and_within_as_a_duration():
    policy = retention.keep_policy("jobs[pg].keep", {"last": "7", "daily": 14, "weekly": 8, "monthly": 12, "yearly": 3, "within": " 90d "}, "stream")
    assert policy == {"last": 7, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 3, "within": "90d"}
    assert retention.keep_policy("f", {"hourly": 24, "daily": None}, "archive") == {"hourly": 24}


@pytest.mark.parametrize(
    "value, method, field, words",
    [
        ({"last": 0}, "stream", "jobs[pg].keep.last", "from 1 to"),
        ({"daily": -1}, "stream", "jobs[pg].keep.daily", "from 1 to"),
        ({"weekly": True}, "stream", "jobs[pg].keep.weekly", "whole number"),
        ({"monthly": 1.5}, "stream", "jobs[pg].keep.monthly", "whole number"),
        ({"daly": 7}, "stream", "jobs[pg].keep.daly", "not a rule of keep"),
        ({"within": "a while"}, "stream", "jobs[pg].keep.within", "not a duration"),
        ({"within": "0d"}, "stream", "jobs[pg].keep.within", "longer than zero"),
        ({}, "stream", "jobs[pg].keep", "sets no rule"),
        ({"last": None}, "archive", "jobs[pg].keep", "sets no rule"),
        ([7], "stream", "jobs[pg].keep", "mapping"),
        ({"last": 7}, "sync", "jobs[pg].keep", "noncurrent_version_expiration_days"),
        ({"last": 7}, "duplicity", "jobs[pg].keep", "retention"),
    ],
)
def test_bad_keep_is_refused_naming_the_field_and_the_fix(value, method, field, words):
    with pytest.raises(InputError) as error:
        retention.keep_policy("jobs[pg].keep", value, method)
    assert error.value.field == field and words in str(error.value)
    assert error.value.fix


def test_the_jobs_role_checks_keep_at_deploy_time_and_says_why_sync_and_duplicity_take_none():
    (job,) = jobs.normalize_jobs([dict(STREAM, keep={"daily": "7"})])
    assert job["keep"] == {"daily": 7}
    (job,) = jobs.normalize_jobs([STREAM], {"keep": {"last": 3}})
    assert job["keep"] == {"last": 3}
    # A default for stream and archive jobs is no error for the host's sync job.
    (sync,) = jobs.normalize_jobs([{"name": "files", "method": "sync", "sync_dir": "/srv"}], {"keep": {"last": 3}})
    assert "keep" not in sync
    with pytest.raises(InputError) as error:
        jobs.normalize_jobs([{"name": "files", "method": "sync", "sync_dir": "/srv", "keep": {"last": 3}}])
    assert error.value.field == "jobs[files].keep" and "one mirror" in str(error.value)
    with pytest.raises(InputError) as error:
        jobs.normalize_jobs([{"name": "r", "method": "duplicity", "source_dir": "/srv", "keep": {"last": 3}}])
    assert error.value.field == "jobs[r].keep" and "retention" in error.value.fix
    with pytest.raises(InputError, match=r"jobs\[pg\]\.keep\.yearly"):
        jobs.normalize_jobs([dict(STREAM, keep={"yearly": "many"})])
    # keep never reaches the host: the runner's config has no such field.
    (unit,) = jobs.job_units([dict(STREAM, keep={"last": 3})], {"bucket": "b-1", "prefix": "hosts/db1", "region": "eu-west-1"}, "db1")
    assert "keep" not in unit["config"]


# ---------------------------------------------------------------------------------------------- selection


def test_last_keeps_the_newest_runs_and_deletes_the_rest_oldest_first():
    runs = daily(10)
    kept, deleted = select(runs, {"last": 3})
    assert list(kept) == names(runs[:3])
    assert deleted == names(reversed(runs[3:]))
    assert kept[names(runs)[0]] == ["the newest complete backup", "last 1"]
    assert kept[names(runs)[2]] == ["last 3"]


def test_calendar_rules_keep_the_newest_run_of_each_period_that_has_one():
    # Three runs a day for 40 days, the newest today at 10:00.
    runs = [run for day in range(40) for run in runs_at(*(NOW - 2 * HOUR - day * DAY - hours * HOUR for hours in (0, 4, 8)))]
    kept, deleted = select(runs, {"daily": 5})
    assert sorted(kept, reverse=True) == [(NOW - 2 * HOUR - day * DAY).strftime("%Y%m%dT%H%M%SZ") for day in range(5)]
    assert len(deleted) == len(runs) - 5
    kept, _deleted = select(runs, {"weekly": 3})
    # Thursday 26 Nov (W48), then the Sundays 22 Nov (W47) and 15 Nov (W46): each week's newest run.
    assert sorted(kept, reverse=True) == ["20261126T100000Z", "20261122T100000Z", "20261115T100000Z"]
    assert [reasons[-1] for _run, reasons in sorted(kept.items(), reverse=True)] == ["weekly 2026-W48", "weekly 2026-W47", "weekly 2026-W46"]
    kept, _deleted = select(runs, {"monthly": 6})
    assert sorted(kept, reverse=True) == ["20261126T100000Z", "20261031T100000Z"]  # only two months have runs
    kept, _deleted = select(runs, {"hourly": 2, "yearly": 5})
    assert sorted(kept, reverse=True) == ["20261126T100000Z", "20261126T060000Z"]


def test_a_run_kept_by_any_rule_stays_with_every_reason():
    runs = daily(60)
    kept, deleted = select(runs, {"last": 2, "daily": 3, "weekly": 2, "monthly": 2})
    newest = names(runs)[0]
    assert kept[newest] == ["the newest complete backup", "last 1", "daily 2026-11-26", "weekly 2026-W48", "monthly 2026-11"]
    assert set(kept) | set(deleted) == set(names(runs)) and not set(kept) & set(deleted)
    assert "20261031T020000Z" in kept and kept["20261031T020000Z"] == ["monthly 2026-10"]


def test_a_gap_in_the_backups_does_not_use_up_periods():
    runs = daily(3) + daily(3, first=NOW - 30 * DAY)
    kept, deleted = select(runs, {"daily": 5})
    assert len(kept) == 5 and deleted == names(runs)[-1:]


def test_within_counts_from_the_newest_run_so_a_stopped_job_keeps_its_runs():
    runs = daily(30, first=NOW - 100 * DAY)  # the job stopped 100 days ago
    kept, deleted = select(runs, {"within": "10d"})
    assert len(kept) == 11 and len(deleted) == 19
    assert all("within 10d of the newest" in kept[name] for name in names(runs)[:11])


def test_the_newest_run_and_runs_younger_than_max_age_always_stay():
    runs = daily(5)
    kept, deleted = select(runs, {"last": 1}, max_age="50h")
    # Runs 10h, 34h and 58h old; the third was stored 3 minutes later, still older than 50h.
    assert list(kept) == names(runs[:2]) and kept[names(runs)[1]] == ["younger than the job's max_age"]
    assert deleted == names(reversed(runs[2:]))
    kept, deleted = select(runs[3:], {"within": "1s"})
    assert list(kept) == names(runs[3:4]) and deleted == names(runs[4:])


def test_a_later_run_in_an_earlier_folder_is_kept_as_the_newest_stored():
    runs = daily(4)
    runs[2]["stored"] = NOW - HOUR  # a host clock behind: its folder says two days ago, S3 stored it an hour ago
    kept, _deleted = select(runs, {"last": 1})
    assert kept[names(runs)[2]] == ["the newest complete backup S3 stored"]
    # Its S3 time also makes it younger than max_age.
    kept, _deleted = select(runs, {"last": 1}, max_age="2h")
    assert kept[names(runs)[2]] == ["the newest complete backup S3 stored", "younger than the job's max_age"]


def test_nothing_to_select_from():
    assert select([], {"last": 3}) == ({}, [])


def test_incomplete_runs_go_once_older_than_the_grace_period_and_max_age():
    unfinished = runs_at(NOW - 30 * DAY, NOW - 8 * DAY, NOW - 6 * DAY, NOW - HOUR)
    unfinished[1]["stored"] = NOW - 2 * DAY  # an object of it was stored later: it counts from then
    week, day = jobs.parse_duration("7d"), jobs.parse_duration("1d")
    assert retention.select_incomplete(unfinished, NOW, week, day) == names(unfinished[:1])
    assert retention.select_incomplete(unfinished, NOW, day, day) == names(unfinished[:3])
    assert retention.select_incomplete(unfinished, NOW, day, jobs.parse_duration("10d")) == names(unfinished[:1])
    assert retention.select_incomplete(unfinished, NOW, None, day) == []
    unfinished[0]["stored"] = None  # no object time: the folder's alone
    assert retention.select_incomplete(unfinished, NOW, week, day) == names(unfinished[:1])


# ---------------------------------------------------------------------------------------------- duplicity chains


def stamp(moment):
    return moment.strftime("%Y%m%dT%H%M%SZ")


def duplicity_files(*sets, stored=None):
    """duplicity's files of ``sets`` ((kind, start, end): 'full' sets have start None), as the prune
    module hands them to duplicity_chains; stored a minute after the set's time unless ``stored``."""
    from ansible_collections.systemd_s3.backup.plugins.module_utils.backups import parse_duplicity_name  # pylint: disable=import-outside-toplevel

    names = []
    for kind, start, end in sets:
        if kind == "full":
            names += [f"duplicity-full.{stamp(end)}.vol1.difftar.gpg", f"duplicity-full.{stamp(end)}.manifest.gpg",
                      f"duplicity-full-signatures.{stamp(end)}.sigtar.gpg"]
        else:
            times = f"{stamp(start)}.to.{stamp(end)}"
            names += [f"duplicity-inc.{times}.vol1.difftar.gpg", f"duplicity-inc.{times}.manifest.gpg", f"duplicity-new-signatures.{times}.sigtar.gpg"]
    files = []
    for name in names:
        parsed = parse_duplicity_name(name)
        files.append({"key": f"hosts/h/j/duplicity/{name}", "name": parsed, "size": 10, "modified": stored or parsed["end"] + datetime.timedelta(minutes=1)})
    return files


def weekly_chains(weeks, incrementals=2, newest=NOW - 2 * DAY):
    """A full backup each week (the newest ``newest``), each followed by daily incrementals."""
    sets = []
    for week in reversed(range(weeks)):
        full = newest - week * 7 * DAY
        sets.append(("full", None, full))
        previous = full
        for day in range(1, incrementals + 1):
            if week == 0 and full + day * DAY >= NOW:
                break
            sets.append(("inc", previous, full + day * DAY))
            previous = full + day * DAY
    return sets


def fulls(chains):
    return [chain["full"] for chain in chains]


def test_duplicity_files_group_into_chains_linked_as_duplicity_links_them_manifest_first():
    chains, others = retention.duplicity_chains(duplicity_files(*weekly_chains(3)))
    assert others == [] and len(chains) == 3
    oldest = chains[0]
    assert oldest["keys"][0].endswith(f"duplicity-full.{stamp(oldest['full'])}.manifest.gpg")
    assert len(oldest["keys"]) == 9 and oldest["sets"] == 3 and oldest["size"] == 90
    assert oldest["end"] == oldest["full"] + 2 * DAY
    # An incremental before any full one links to no chain and is never deleted.
    early = duplicity_files(("inc", NOW - 40 * DAY, NOW - 39 * DAY))
    chains, others = retention.duplicity_chains(early + duplicity_files(*weekly_chains(1)))
    assert len(chains) == 1 and others == sorted(entry["key"] for entry in early)


def test_a_full_set_without_manifest_starts_no_chain_and_its_files_are_left_alone():
    files = duplicity_files(*weekly_chains(2))
    unfinished = [entry for entry in files if entry["key"].endswith(f"full.{stamp(NOW - 2 * DAY)}.manifest.gpg")]
    chains, others = retention.duplicity_chains([entry for entry in files if entry not in unfinished])
    # The newest full has no manifest: it and the incremental on it belong to no chain.
    assert len(chains) == 1 and chains[0]["full"] == NOW - 9 * DAY
    assert len(others) == 2 + 3 and not [key for key in others if key in chains[0]["keys"]]
    kept, deleted = retention.select_chains(chains, {"keep_full": 1}, NOW, 1)
    assert list(kept) == [NOW - 9 * DAY] and deleted == []


def test_a_stray_full_volume_inside_a_chain_does_not_split_it():
    """An interrupted full (a volume, no manifest) dated in the middle of a chain: the chain's later
    incrementals still link to it, as duplicity links them, and older_than keeps the whole chain."""
    sets = [("full", None, NOW - 100 * DAY)] + [("inc", NOW - (100 - day) * DAY, NOW - (99 - day) * DAY) for day in range(60)]
    sets.append(("full", None, NOW - 5 * DAY))
    files = duplicity_files(*sets)
    stray = duplicity_files(("full", None, NOW - 69 * DAY - HOUR))
    files += [entry for entry in stray if "vol1" in entry["key"]]
    chains, others = retention.duplicity_chains(files)
    assert [chain["sets"] for chain in chains] == [61, 1] and len(others) == 1
    kept, deleted = retention.select_chains(chains, {"older_than": "45D"}, NOW, 1)
    assert deleted == [] and kept[NOW - 100 * DAY] == ["ends within older_than 45D"]


def chains_of(weeks, **kwargs):
    return retention.duplicity_chains(duplicity_files(*weekly_chains(weeks, **kwargs)))[0]


def test_keep_full_keeps_the_newest_n_chains_as_remove_all_but_n_full():
    chains = chains_of(5)
    kept, deleted = retention.select_chains(chains, {"keep_full": 2}, NOW, 1)
    assert fulls(deleted) == fulls(chains[:3])
    assert kept[chains[-1]["full"]] == ["the newest complete chain", "keep_full 1"]
    assert kept[chains[-2]["full"]] == ["keep_full 2"]
    # No more chains than keep_full: nothing goes, as with duplicity.
    assert retention.select_chains(chains, {"keep_full": 5}, NOW, 1)[1] == []


def test_older_than_deletes_chains_whose_newest_set_is_older_as_remove_older_than():
    chains = chains_of(5)  # ends: 2d ago (+ incrementals up to now), 7d, 14d, 21d, 28d ago + 2 days
    kept, deleted = retention.select_chains(chains, {"older_than": "2W"}, NOW, 1)
    # A chain ending 7 - 2 = 5 and 12 days ago stays; 19 and 26 days ago go.
    assert fulls(deleted) == fulls(chains[:2])
    assert kept[chains[2]["full"]] == ["ends within older_than 2W"]
    assert retention.duplicity_interval_seconds("1Y2M3W4D5h6m7s") == 365 * 86400 + 60 * 86400 + 21 * 86400 + 4 * 86400 + 5 * 3600 + 367


def test_the_active_chain_young_chains_and_evidence_always_stay():
    chains = chains_of(4)
    # Everything is older than 1 second: only the active (newest complete) chain stays.
    kept, deleted = retention.select_chains(chains, {"older_than": "1s"}, NOW, 1)
    assert list(kept) == [chains[-1]["full"]] and fulls(deleted) == fulls(chains[:-1])
    # A max_age of 10 days keeps the chain that ended 7 - 2 = 5 days ago.
    kept, deleted = retention.select_chains(chains, {"older_than": "1s"}, NOW, jobs.parse_duration("10d"))
    assert kept[chains[-2]["full"]] == ["younger than the job's max_age"] and fulls(deleted) == fulls(chains[:2])
    # A chain holding a suspicious set is evidence.
    kept, deleted = retention.select_chains(chains, {"keep_full": 1}, NOW, 1, suspicious={chains[0]["full"]})
    assert kept[chains[0]["full"]] == ["holds a suspicious set (evidence)"] and fulls(deleted) == fulls(chains[1:3])


def test_a_forged_chain_never_pushes_real_ones_out():
    """A leaked host key's complete full set, dated in the future (flagged suspicious), after now, or
    inside a real chain's span, is kept as evidence and never counts as the newest chain nor toward
    keep_full."""
    real = weekly_chains(2)
    for forged_at, suspicious in ((NOW + 300 * DAY, True), (NOW + 300 * DAY, False), (NOW - 8 * DAY - HOUR, False)):
        chains, _others = retention.duplicity_chains(duplicity_files(*real, ("full", None, forged_at)))
        evidence = {forged_at} if suspicious else set()
        kept, deleted = retention.select_chains(chains, {"keep_full": 1}, NOW, 1, suspicious=evidence)
        assert forged_at in kept and "evidence" in kept[forged_at][0], kept
        assert kept[NOW - 2 * DAY][0] == "the newest complete chain" and fulls(deleted) == [NOW - 9 * DAY]
        kept, deleted = retention.select_chains(chains, {"older_than": "1s"}, NOW, 1, suspicious=evidence)
        assert kept[NOW - 2 * DAY][0] == "the newest complete chain" and fulls(deleted) == [NOW - 9 * DAY]

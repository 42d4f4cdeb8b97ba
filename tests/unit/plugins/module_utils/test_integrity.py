"""backups_check's pure logic (module_utils/integrity.py): input, which runs and objects make a job's
sample, how the download budget is shared, and the verdicts."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import backups as bk
from ansible_collections.systemd_s3.backup.plugins.module_utils import integrity as ic
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
DAY = datetime.timedelta(days=1)
SHA = "a" * 64


def params(**overrides):
    defaults = {"bucket": "acme-backups", "prefix": "hosts", "hosts": None, "jobs": None, "within": "7d", "sample": "10%", "max_bytes": "1GiB", "seed": None}
    return {**defaults, **overrides}


# ---------------------------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "value, parsed",
    [("10%", ("percent", 10.0)), ("100%", ("percent", 100.0)), ("0.5 %", ("percent", 0.5)), ("10", ("count", 10)), (3, ("count", 3)), (" 1 ", ("count", 1))],
)
def test_sample_is_a_count_or_a_percentage(value, parsed):
    assert ic.parse_sample(value) == parsed


@pytest.mark.parametrize("value", ["ten", "0", "0%", "101%", "1.5", "-2", "", "10%%", True])
def test_bad_sample_names_the_field(value):
    with pytest.raises(InputError) as error:
        ic.parse_sample(value)
    assert error.value.field == "sample" and "such as '10%'" in str(error.value)


@pytest.mark.parametrize(
    "value, size",
    [("1GiB", 2**30), ("500MB", 500 * 10**6), ("0", 0), (1048576, 1048576), ("1.5 kib", 1536), ("2 TB", 2 * 10**12), ("7B", 7)],
)
def test_sizes(value, size):
    assert ic.parse_size(value) == size


@pytest.mark.parametrize("value", ["lots", "1G", "-1", "1 GiB extra", "", "1e9", True])
def test_bad_size_names_the_field(value):
    with pytest.raises(InputError) as error:
        ic.parse_size(value)
    assert error.value.field == "max_bytes" and "GiB" in error.value.fix


def test_validate_converts_and_a_missing_seed_is_made_up():
    options = ic.validate(params(hosts=["db1", "db1", "web1"], within="36h", sample="3"))
    assert options["hosts"] == ["db1", "web1"] and options["within"] == 36 * 3600 and options["within_text"] == "36h"
    assert options["sample"] == ("count", 3) and options["max_bytes"] == 2**30
    assert len(options["seed"]) == 8 and options["seed"] != ic.validate(params())["seed"]
    assert ic.validate(params(seed=" 2026-11 "))["seed"] == "2026-11"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"within": "a week"}, "within"),
        ({"sample": "most"}, "sample"),
        ({"max_bytes": "big"}, "max_bytes"),
        ({"seed": "  "}, "seed"),
        ({"bucket": "Not_A_Bucket"}, "bucket"),
        ({"hosts": ["db1/pg"]}, "hosts"),
        ({"jobs": [""]}, "jobs"),
        ({"prefix": ""}, "prefix"),
    ],
)
def test_validate_refuses_bad_input_naming_the_field(overrides, field):
    with pytest.raises(InputError) as error:
        ic.validate(params(**overrides))
    assert error.value.field == field and str(error.value).startswith(f"{field}: ")


# ---------------------------------------------------------------------------------------------- runs and candidates


def run(folder, age, method=None, suspicious=False):
    """A backup as backups.job_backups gives it, its manifest stored ``age`` ago."""
    return {
        "method": method,
        "time": NOW - age,
        "manifest_key": f"hosts/db1/pg/{folder}/manifest.json",
        "run_prefix": f"hosts/db1/pg/{folder}/",
        "reasons": ["forged"] if suspicious else [],
    }


def listing(files_by_folder):
    return {
        "runs": {
            folder: {"files": {f"hosts/db1/pg/{folder}/{name}": {"size": size, "storage_class": sc} for name, size, sc in files}}
            for folder, files in files_by_folder.items()
        },
        "duplicity": {},
    }


def test_runs_within_the_window_and_the_newest_good_one_however_old():
    old, older = run("20261101T020000Z", 23 * DAY), run("20261020T020000Z", 35 * DAY)
    forged = run("20261123T020000Z", DAY, suspicious=True)
    duplicity = run("duplicity", 2 * DAY, method=bk.DUPLICITY)
    runs, newest = ic.runner_runs([older, old, duplicity], [forged])
    assert runs == [older, old, forged] and newest is old
    assert ic.candidate_runs(runs, newest, 7 * 86400, NOW) == [forged, old]  # a stopped job's last run is still read
    assert ic.candidate_runs(runs, newest, 40 * 86400, NOW) == [older, old, forged]
    assert ic.runner_runs([], []) == ([], None)


def test_candidates_are_the_listed_data_objects_sorted_by_key():
    runs = [run("20261123T020000Z", DAY), run("20261122T020000Z", 2 * DAY)]
    found = ic.candidates("db1", "pg", runs, listing({"20261123T020000Z": [("b", 2, "STANDARD")], "20261122T020000Z": [("a", 1, "GLACIER")]}))
    assert [(c["run"], c["key"].rsplit("/", 1)[-1], c["stored_size"], c["storage_class"]) for c in found] == [
        ("20261122T020000Z", "a", 1, "GLACIER"),
        ("20261123T020000Z", "b", 2, "STANDARD"),
    ]
    assert found[0]["host"] == "db1" and found[0]["job"] == "pg"


@pytest.mark.parametrize(
    "sample, available, count",
    [
        (("count", 10), 3, 3),
        (("count", 2), 30, 2),
        (("percent", 10.0), 30, 3),
        (("percent", 10.0), 31, 4),
        (("percent", 1.0), 5, 1),
        (("percent", 100.0), 7, 7),
        (("count", 5), 0, 0),
    ],
)
def test_sample_count_rounds_up_and_takes_at_least_one(sample, available, count):
    assert ic.sample_count(sample, available) == count


def many(host="db1", job="pg", runs=("20261123T020000Z", "20261122T020000Z", "20261121T020000Z"), per_run=10):
    return [
        {"host": host, "job": job, "run": folder, "key": f"hosts/{host}/{job}/{folder}/f{number:02}", "stored_size": 1, "storage_class": "STANDARD"}
        for folder in sorted(runs)
        for number in range(per_run)
    ]


def test_draw_is_reproducible_with_its_seed_and_starts_with_the_newest_run():
    found = many()
    first = ic.draw(found, "20261123T020000Z", ("count", 5), "seed-1")
    assert len(first) == 5 and len({c["key"] for c in first}) == 5
    assert first[0]["run"] == "20261123T020000Z"
    assert ic.draw(found, "20261123T020000Z", ("count", 5), "seed-1") == first
    draws = {tuple(c["key"] for c in ic.draw(found, "20261123T020000Z", ("count", 5), f"seed-{n}")) for n in range(20)}
    assert len(draws) > 15  # another seed, another sample
    # Always the newest run first, whatever the seed; the rest come from every run.
    assert all(draw[0].startswith("hosts/db1/pg/20261123T020000Z/") for draw in draws)
    assert {key.split("/")[3] for draw in draws for key in draw[1:]} == {"20261121T020000Z", "20261122T020000Z", "20261123T020000Z"}


def test_another_jobs_objects_do_not_change_a_jobs_sample():
    alone = ic.draw(many(), "20261123T020000Z", ("percent", 10.0), "s")
    assert len(alone) == 3
    assert ic.draw(many(), "20261123T020000Z", ("percent", 10.0), "s") == alone
    other_host = ic.draw(many(host="web1"), "20261123T020000Z", ("percent", 10.0), "s")
    # Seeded per host and job: the same layout on another host draws other objects.
    assert [c["key"].split("/", 2)[2] for c in other_host] != [c["key"].split("/", 2)[2] for c in alone]
    assert ic.draw([], None, ("count", 3), "s") == []
    assert [c["run"] for c in ic.draw(many(), None, ("count", 30), "s")].count("20261123T020000Z") == 10  # no newest run: plain random


def sized(name, size):
    return {"key": name, "stored_size": size}


def test_the_budget_goes_round_the_jobs_first_objects_first():
    a = [sized("a1", 40), sized("a2", 40), sized("a3", 40)]
    b = [sized("b1", 30), sized("b2", 100), sized("b3", 5)]
    c = [sized("c1", 500)]
    chosen, over = ic.share_budget([a, b, c], 120)
    assert [i["key"] for i in chosen] == ["a1", "b1", "a2", "b3"]  # c1 and b2 do not fit; b3 still does
    assert [i["key"] for i in over] == ["c1", "b2", "a3"]
    assert ic.share_budget([a, b], 0) == ([], [a[0], b[0], a[1], b[1], a[2], b[2]])
    assert ic.share_budget([], 10) == ([], [])
    assert ic.share_budget([[sized("empty", 0)]], 0) == ([], [sized("empty", 0)])  # 0: manifests only
    assert ic.share_budget([[sized("empty", 0), sized("one", 1)]], 1) == ([sized("empty", 0), sized("one", 1)], [])


# ---------------------------------------------------------------------------------------------- verdicts


def entry(size=3, sha256=SHA):
    return {"key": "hosts/db1/pg/20261123T020000Z/pg.sql.zst", "size": size, "sha256": sha256}


def test_verdicts_from_the_listing():
    assert ic.listed_verdict(entry(), 3) is None  # to be read
    assert ic.listed_verdict(None, 3)[0] == ic.UNLISTED
    status, what = ic.listed_verdict(entry(), 2)
    assert status == ic.MISMATCH and what == "is stored with 2 bytes, its manifest says 3 bytes (truncated or replaced)"


def test_verdicts_of_a_read():
    assert ic.read_verdict(entry(), (3, SHA)) == (ic.OK, "matches its manifest's size and sha256")
    status, what = ic.read_verdict(entry(), (3, "b" * 64))
    assert status == ic.MISMATCH and f"sha256 {'b' * 64}" in what and f"says 3 bytes with sha256 {SHA}" in what
    assert ic.read_verdict(entry(), None)[0] == ic.MISSING
    assert ic.read_verdict(entry(), ic.COLD)[0] == ic.COLD


def test_manifests_without_digests_are_unreadable_for_the_check():
    assert ic.manifest_problem([entry()]) is None
    assert "without a sha256" in ic.manifest_problem([entry(sha256=None)])
    assert "without a sha256" in ic.manifest_problem([entry(sha256="ABC")])
    assert "negative size" in ic.manifest_problem([entry(size=-1)])


def test_problems_and_the_message_name_host_job_run_and_object():
    assert set(ic.PROBLEMS) == {"mismatch", "missing", "unlisted", "unreadable_manifest"}
    assert ic.OK not in ic.PROBLEMS and ic.COLD not in ic.PROBLEMS and ic.SKIPPED not in ic.PROBLEMS
    line = ic.message({"host": "db1", "job": "pg", "run": "20261123T020000Z", "key": "hosts/db1/pg/20261123T020000Z/pg.sql.zst", "what": "is gone"})
    assert line == "db1 pg run 20261123T020000Z: hosts/db1/pg/20261123T020000Z/pg.sql.zst is gone"


def test_a_duplicity_sets_lost_volume_is_named_like_its_neighbours():
    base = "hosts/nas1/home/duplicity/duplicity-inc.20261101T020000Z.to.20261108T020000Z"
    volumes = {f"{base}.vol{n}.difftar.gpg": {} for n in (1, 2, 4, 6)}
    assert ic.volume_gaps(volumes) == [f"{base}.vol3.difftar.gpg", f"{base}.vol5.difftar.gpg"]
    assert ic.volume_gaps({f"{base}.vol1.difftar.gz": {}, f"{base}.vol2.difftar.gz": {}}) == []
    assert ic.volume_gaps({f"{base}.vol2.difftar.gz": {}}) == [f"{base}.vol1.difftar.gz"]
    assert ic.volume_gaps({}) == []

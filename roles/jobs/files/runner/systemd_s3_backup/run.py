"""``run``: one backup of the job, as its unit starts it. Everything that can be checked is checked
before any service stops; the services start again whatever happened; the manifest goes last."""

import json
import time

from . import contract
from .config import load_config
from .journal import INFO, WARNING, Failure, log, run_exit_status, signals
from .methods import METHODS, Run
from .metrics import write_metrics
from .ping import send_ping
from .proc import SHELL, run_checked
from .s3 import CHECKSUM_ALGORITHM, PendingAborts, aws_client, check_bucket_access, keep_part_buffers_unpooled, use_credentials
from .services import StoppedServices
from .state import JobLock, remember_success


def command_run(args):
    """The run between its pings and with its metrics: start once the config is read, success at the
    end; a failure's ping is the alert unit's (OnFailure=), which also hears of a run that was killed."""
    keep_part_buffers_unpooled()
    config = load_config(args.config)
    log.tag = config["job"]
    signals.install()
    began = time.time()
    try:
        send_ping(config, "start", f"{config['unit']} on {config['host']} (runner {contract.VERSION})")
        outcome, record = run_job(config)
    except BaseException as error:
        write_metrics(config, began, time.time(), run_exit_status(error))
        raise
    write_metrics(config, began, time.time(), 0, record)
    send_ping(config, "success", f"backup complete: {outcome.summary}")
    return 0


def run_job(config):
    """The backup; returns the method's outcome and what was remembered of it, or raises."""
    method = METHODS[config["method"]]
    method.check(config)
    use_credentials(config)
    job_lock = JobLock(config)  # a local, so that the open lock file lives as long as this run
    job_lock.acquire()
    s3 = aws_client(config, "s3", connections=config["max_concurrency"] + 2)
    started = contract.utc_now()
    run_prefix = method.prefix(config, started)
    log(INFO, f"{method.describe(config)} of {config['host']} to s3://{config['bucket']}/{run_prefix}/ (runner {contract.VERSION})")
    # Not the manifest's key: the data tag is denied there (policies: DenyTaggingMetadata), and this
    # upload is never completed anyway.
    check_bucket_access(s3, config["bucket"], f"{run_prefix}/{contract.ACCESS_CHECK_NAME}")
    PendingAborts(config["job"]).retry(s3)
    services = StoppedServices(config["job"])
    if services.units:
        log(WARNING, f"an earlier run left {' '.join(services.units)} stopped: starting them at the end too")
    try:
        outcome, record = backup(method, Run(config, s3, run_prefix, started, services))
    finally:
        services.start()
    record = dict(record, stored=outcome.stored())
    remember_success(config["job"], record)
    if services.units:
        raise Failure(contract.EX_TEMPFAIL, f"the backup is stored, but {' '.join(services.units)} did not start again")
    log(INFO, f"backup complete: {outcome.summary}")
    return outcome, record


def backup(method, run):
    """The steps during which services may be down: stop them, pre_commands, the method, the manifest.
    Returns the method's outcome and what remember_success keeps."""
    config = run.config
    run.services.stop(config["stop_services"])
    for number, command in enumerate(config["pre_commands"], 1):
        run_checked(SHELL + [command], f"pre_command {number}/{len(config['pre_commands'])}", config["run_as"])
    outcome = method.backup(run)
    if outcome.record is not None:  # the method committed its backup itself
        return outcome, outcome.record
    return outcome, write_manifest(run, outcome.objects)


def write_manifest(run, objects):
    """The commit marker: a run is a backup only once its manifest is stored, so it goes last."""
    config = run.config
    manifest = contract.new_manifest(config, run.started, contract.utc_now(), objects)
    key = contract.manifest_key(run.prefix)
    run.s3.put_object(
        Bucket=config["bucket"], Key=key, Body=json.dumps(manifest, indent=2).encode(), ContentType="application/json", ChecksumAlgorithm=CHECKSUM_ALGORITHM
    )
    log(INFO, f"stored manifest s3://{config['bucket']}/{key}")
    manifest["manifest"] = f"s3://{config['bucket']}/{key}"
    return manifest

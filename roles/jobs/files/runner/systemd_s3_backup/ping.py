"""A dead man's switch: healthchecks.io-style pings (``<url>/start``, ``<url>``, ``<url>/fail``).

``run`` sends start and success; the alert unit (OnFailure=) sends fail, so a run that was killed or
crashed pings too. A ping is tried a few times and never changes the exit status: a monitoring
outage must not fail a backup. The URL's path is the check's secret, so the journal shows its host only."""

import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from . import contract
from .journal import INFO, WARNING, log

PING_ATTEMPTS = 3
PING_TIMEOUT = 10  # seconds per attempt
PING_BACKOFF = 2  # seconds before the second attempt, doubled for each further one
# healthchecks.io keeps the first 100 kB of a ping's body.
PING_BODY_MAX_BYTES = 100_000
PING_SUFFIXES = {"start": "/start", "success": "", "fail": "/fail"}


def read_ping_url(config):
    """The job's ping URL from its root-only file, or None (no ping: not set, or unreadable, said in a warning)."""
    path = config.get("ping_url_file")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        log(WARNING, f"cannot read the ping URL from {path} ({error.strerror}): no ping is sent")
        return None
    try:
        return contract.ping_url(text)
    except contract.FieldError as error:
        log(WARNING, f"the ping URL in {path} {error.problem}: no ping is sent. {error.fix}")
        return None


def shown(url):
    """What the journal may show of a ping URL: scheme and host, never the path (the secret)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def run_id(invocation):
    """healthchecks.io's rid (a UUID) from a systemd invocation ID (32 hex digits): start and success or
    fail of one run pair up, even when the alert unit sends the fail."""
    try:
        return str(uuid.UUID(hex=invocation)) if invocation else None
    except ValueError:
        return None


def ping_target(url, kind, invocation=None):
    rid = run_id(invocation)
    return url + PING_SUFFIXES[kind] + (f"?rid={rid}" if rid else "")


def describe_failure(error, url):
    """Why a ping failed, without the URL's secret path."""
    if isinstance(error, urllib.error.HTTPError):
        problem = f"HTTP {error.code} {error.reason}"
    elif isinstance(error, urllib.error.URLError):
        problem = str(error.reason)
    else:
        problem = str(error) or type(error).__name__
    path = urllib.parse.urlsplit(url).path
    problem = problem.replace(url, shown(url))
    return problem.replace(path, "/...") if len(path) > 1 else problem


def send_ping(config, kind, body="", invocation=None, attempts=PING_ATTEMPTS, timeout=PING_TIMEOUT, backoff=PING_BACKOFF):
    """POSTs ``body`` (text, cut to PING_BODY_MAX_BYTES) to the job's ``kind`` ping; True when it was
    received. ``invocation``: the run's systemd InvocationID (default this unit's $INVOCATION_ID).
    A 4xx answer is not retried (the URL is wrong); a network error or 5xx is."""
    url = read_ping_url(config)
    if url is None:
        return False
    target = ping_target(url, kind, invocation or os.environ.get("INVOCATION_ID"))
    data = body.encode("utf-8", errors="replace")[:PING_BODY_MAX_BYTES]
    headers = {"User-Agent": f"systemd-s3-backup/{contract.VERSION}", "Content-Type": "text/plain; charset=utf-8"}
    delay, attempt = backoff, 0
    while True:
        attempt += 1
        try:
            request = urllib.request.Request(target, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(4096)
            log(INFO, f"{kind} ping sent to {shown(url)}")
            return True
        except (OSError, http.client.HTTPException, ValueError) as error:  # URLError and HTTPError are OSErrors
            problem = describe_failure(error, url)
            refused = isinstance(error, urllib.error.HTTPError) and error.code < 500
        if refused or attempt >= attempts:
            log(WARNING, f"{kind} ping to {shown(url)} failed ({problem}) after {attempt} attempt(s): given up; the backup's result stands")
            return False
        log(WARNING, f"{kind} ping to {shown(url)} failed ({problem}): trying again in {delay} s")
        time.sleep(delay)
        delay *= 2

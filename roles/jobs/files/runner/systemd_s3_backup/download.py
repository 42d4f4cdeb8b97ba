"""Downloads of a run's objects: each checked against its manifest's sha256 before its last bytes
reach the decryptor, decompressor or target, into files that appear only once complete."""

import contextlib
import hashlib
import os
import subprocess
import tempfile
import threading

from botocore import exceptions as aws_errors

from .contract import ENCRYPTION_SUFFIXES, EX_DATAERR, EX_IOERR
from .journal import ERR, INFO, WARNING, DataError, Failure, describe_status, log, signals
from .proc import STOP_GRACE_SECONDS, Pipeline
from .s3 import MIB


# Bytes of each object kept back from the stages until its sha256 is checked: more than age's last
# chunk (64 KiB), so that a damaged object never reaches the decryptor, decompressor or target whole-looking.
HELD_BACK_BYTES = MIB


def restore_files(s3, bucket, manifest, decoders, paths):
    """Each object into its path, all or nothing."""
    with PartialFiles() as partials:
        for entry, path in zip(manifest["objects"], paths):
            with partials.open(path) as output:
                restore_object(s3, bucket, entry, decoders, output=output)
                output.flush()
                os.fsync(output.fileno())
        partials.commit()


class PartialFiles:
    """Files restored next to their final paths as <name>.partial-XXXXXXXX (0600), moved into place
    together once every one is complete and checked, removed otherwise: a failed restore leaves
    nothing that looks restored."""

    def __init__(self):
        self.pending = []  # (partial path, final path)

    def __enter__(self):
        return self

    def open(self, path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".partial-")
        self.pending.append((partial, path))
        return os.fdopen(handle, "wb")

    def commit(self):
        for partial, path in self.pending:
            os.replace(partial, path)
            log(INFO, f"restored {path}")
        self.pending = []

    def __exit__(self, *_exception):
        with signals.shielded():
            for partial, _path in self.pending:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(partial)
                log(WARNING, f"removed the incomplete {partial}")


def restore_object(s3, bucket, entry, decoders, output=None, target=None):
    """Downloads one object through ``decoders`` ((what, argv), piped into each other) into ``output``
    (a file) or into the ``target`` command ((argv, run_as)). Each hand-over holds back the last bytes
    until everything before it proved good (the object's sha256, the decoders' exit statuses), and a
    failure ends the stages last first: the target never sees a damaged or cut backup end as if whole.
    Fails with 65 on a damaged object or a failed decoder, with the target's own status, or with 74
    when the target stops reading early."""
    log(INFO, f"download s3://{bucket}/{entry['key']} ({entry['size']} bytes)")
    decoding, receiving = Pipeline(checks_input=True), Pipeline()
    relay = None
    try:
        for number, (what, argv) in enumerate(decoders):
            into_output = number == len(decoders) - 1 and not target
            decoding.add(what, argv, stdin=subprocess.PIPE, stdout=output if into_output else subprocess.PIPE)
        if target:
            receiving.add("command", target[0], name="command", run_as=target[1], stdin=subprocess.PIPE, stdout=None)
        if decoding.stages and receiving.stages:
            relay = Relay(decoding.stages[-1][1].stdout, HeldBack(receiving.stdin))
        first = decoding.stdin or receiving.stdin
        download = HeldBack(first or output)
        try:
            download_checked(s3, bucket, entry, download)
            whole = hand_over(download, first)
        except BrokenPipeError:  # a stage ended early: the statuses tell why
            whole = False
        if relay:
            relay.join()
        decoder_failure = decoding.wait()
        if relay and relay.broken:  # the target stopped reading: the decoders only lost their reader
            whole = False
        else:
            raise_for_stage(decoder_failure, EX_DATAERR)
            if relay:
                whole = hand_over(relay.sink, receiving.stdin) and whole
        raise_for_stage(receiving.wait())
        if not whole:
            raise Failure(EX_IOERR, f"{(receiving.stages or decoding.stages)[-1][0]} stopped reading before the end of the backup: the restore is incomplete")
    except BaseException:
        with signals.shielded():
            if receiving.stages and receiving.stages[0][1].poll() is None:
                log(ERR, "ending the command before the end of the backup: what it got so far is incomplete")
            receiving.end()
            decoding.end()
            if relay:
                relay.join(STOP_GRACE_SECONDS)
        raise


def raise_for_stage(failure, status=None):
    """Raises the failure of a stage ((name, its exit status), from Pipeline.wait), with ``status``
    (else the stage's own) as the runner's exit status."""
    if failure:
        name, own = failure
        raise Failure(status or own, f"{name} failed with {describe_status(own)}: the restore is incomplete")


def hand_over(held, stream):
    """Passes on the held-back bytes and closes ``stream`` (a stage's stdin, or None for a file);
    False when the stage had stopped reading."""
    try:
        held.release()
        if stream:
            stream.close()
        return True
    except BrokenPipeError:
        return False


class HeldBack:
    """A writer that passes on all but the last HELD_BACK_BYTES until release(): its reader never sees
    the stream's end before the runner checked what came before."""

    def __init__(self, stream):
        self.stream = stream
        self.held = bytearray()

    def write(self, data):
        # What is older than the last HELD_BACK_BYTES goes on without a copy of its own: the held bytes first,
        # then the start of ``data``; only the newest bytes are copied into the held ones.
        passing = len(self.held) + len(data) - HELD_BACK_BYTES
        if passing > 0:
            from_held = min(passing, len(self.held))
            if from_held:
                self.stream.write(memoryview(self.held)[:from_held])
                del self.held[:from_held]
            if passing > from_held:
                self.stream.write(memoryview(data)[: passing - from_held])
            data = memoryview(data)[max(0, passing - from_held):]
        self.held += data

    def release(self):
        self.stream.write(self.held)
        self.held = bytearray()


class Relay(threading.Thread):
    """Copies the decoders' output into the target's HeldBack while the main thread downloads. When
    the target stops reading, it closes its source, so that the decoders end too (SIGPIPE)."""

    def __init__(self, source, sink):
        super().__init__(name="restore-relay", daemon=True)
        self.source, self.sink, self.broken = source, sink, False
        self.start()

    def run(self):
        try:
            for block in iter(lambda: self.source.read(MIB), b""):
                self.sink.write(block)
        except (OSError, ValueError):  # the target's stdin broken, or the source closed by end()
            self.broken = True
            with contextlib.suppress(OSError):
                self.source.close()


def download_checked(s3, bucket, entry, sink):
    """Streams the object into ``sink`` (a HeldBack, released by the caller once this returned),
    computing its sha256 on the way."""
    try:
        body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"]
    except aws_errors.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise DataError(f"s3://{bucket}/{entry['key']}, listed in the manifest, is missing") from None
        raise
    sha256, size = hashlib.sha256(), 0
    with contextlib.closing(body):
        for block in iter(lambda: body.read(MIB), b""):
            sha256.update(block)
            size += len(block)
            sink.write(block)
    if (size, sha256.hexdigest()) != (entry["size"], entry["sha256"]):
        raise DataError(
            f"sha256 check failed: s3://{bucket}/{entry['key']} has {size} bytes with sha256 {sha256.hexdigest()}, "
            f"its manifest says {entry['size']} bytes with sha256 {entry['sha256']} (truncated or corrupted)"
        )
    log(INFO, f"size and sha256 of s3://{bucket}/{entry['key']} match the manifest")


def restore_paths(manifest, run_prefix, args):
    """Where each object goes: --to-file, or its path in the run folder under --to-dir, without the
    encryption's suffix. Paths that would leave the directory are refused."""
    if args.to_file:
        return [os.path.abspath(args.to_file)]
    directory = os.path.realpath(args.to_dir)
    suffix = ENCRYPTION_SUFFIXES[manifest["encryption"]["method"]] if manifest.get("encryption") else ""
    paths = []
    for entry in manifest["objects"]:
        name = entry["key"][len(run_prefix) + 1:]
        name = name[: -len(suffix)] if suffix and name.endswith(suffix) else name
        path = os.path.join(directory, name)
        if name.startswith("/") or ".." in name.split("/") or not os.path.realpath(path).startswith(directory + os.sep):
            raise DataError(f"object {entry['key']} would be restored outside {directory}")
        paths.append(path)
    return paths

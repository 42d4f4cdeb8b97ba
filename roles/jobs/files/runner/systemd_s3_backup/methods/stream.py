"""stream: the command's stdout, compressed, encrypted, straight into one S3 object (nothing on disk).
The services stay stopped for the whole stream: the dump is the upload."""

from .. import contract
from ..crypto import check_stream_tools, compressor_argv, encryptor_argv, stored_name
from ..download import restore_files, restore_object, restore_paths
from ..journal import INFO, log
from ..proc import SHELL
from ..s3 import upload_pipeline
from . import Outcome, describe_backup, run_folder

NAME = "stream"
FOLDER = None
describe, prefix = describe_backup, run_folder
RESTORE_TARGETS = ("to_command", "to_file")


def check(config):
    check_stream_tools(config, compressor_argv(config))


def backup(run):
    config = run.config
    key = f"{run.prefix}/{stored_name(config, config['object_name'] + contract.COMPRESSION_SUFFIXES[config['compression']])}"
    log(INFO, f"stream to s3://{config['bucket']}/{key}")

    def start(pipeline):
        output = pipeline.add("command", SHELL + [config["command"]], name="command", run_as=config["run_as"])
        for what, argv in (("compress", compressor_argv(config)), ("encrypt", encryptor_argv(config))):
            if argv:
                output = pipeline.add(what, argv)
        return output

    objects = [upload_pipeline(config, run.s3, key, start)]
    return Outcome(objects, f"1 object(s), {objects[0]['size']} bytes")


def restore(request):
    request.thaw.objects_under(f"{request.run_prefix}/")
    entry = request.manifest["objects"][0]
    if request.args.to_command:
        restore_object(request.s3, request.config["bucket"], entry, request.decoders, target=(SHELL + [request.args.to_command], request.run_as))
    else:
        paths = restore_paths(request.manifest, request.run_prefix, request.args)
        restore_files(request.s3, request.config["bucket"], request.manifest, request.decoders, paths)

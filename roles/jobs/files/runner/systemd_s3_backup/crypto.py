"""Compression and encryption: the programs a stream goes through, and their checks."""

import os
import shutil

from .contract import ENCRYPTION_SUFFIXES, PASSPHRASE_CREDENTIAL, RUNTIME_ROOT
from .journal import ConfigError
from .state import unit_directory


COMPRESSORS = {"zstd": ["zstd", "-q", "-c", "-T0"], "gzip": ["gzip", "-c"]}

DECOMPRESSORS = {"zstd": ["zstd", "-q", "-d", "-c"], "gzip": ["gzip", "-d", "-c"]}


def compressor_argv(config):
    """The compressor between the command and S3, or None without compression."""
    if config["compression"] == "none":
        return None
    return COMPRESSORS[config["compression"]] + [f"-{config['compression_level']}"]


def encryptor_argv(config):
    """The encryptor the stored bytes go through last, or None without encryption. It reads the
    plaintext on stdin and writes the ciphertext to stdout, so nothing plain touches the disk."""
    encryption = config["encryption"]
    if not encryption:
        return None
    if encryption["method"] == "age":
        return ["age"] + [argument for recipient in encryption["recipients"] for argument in ("-r", recipient)]
    return [
        *gpg_argv(gnupg_home(config["job"]), passphrase_credential(config)),
        *("--symmetric", "--cipher-algo", "AES256", "--s2k-digest-algo", "SHA512", "--s2k-count", "65011712"),
        # The stream is compressed already (archive jobs: by the command, if at all).
        *("--compress-algo", "none", "--output", "-"),
    ]


def gpg_argv(home, passphrase_file):
    """gpg without a terminal, reading the passphrase from a file. Its own empty home: root's may be
    read-only (ProtectHome=), and no agent or keyring is wanted."""
    return [
        *("gpg", "--batch", "--quiet", "--no-tty", "--no-symkey-cache", "--homedir", home),
        *("--pinentry-mode", "loopback", "--passphrase-file", passphrase_file),
    ]


def passphrase_credential(config):
    """Where systemd put the unit's passphrase credential ($CREDENTIALS_DIRECTORY is that directory
    inside the unit; it exists only while the unit runs)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY") or os.path.join("/run/credentials", config["unit"])
    return os.path.join(directory, PASSPHRASE_CREDENTIAL)


def gnupg_home(job):
    return os.path.join(unit_directory("RUNTIME_DIRECTORY", RUNTIME_ROOT, job), "gnupg")


def stored_name(config, name):
    """The object name of ``name`` as stored: with the suffix of the encryption, if any."""
    return name + (ENCRYPTION_SUFFIXES[config["encryption"]["method"]] if config["encryption"] else "")


def check_passphrase_credential(config):
    if not os.path.isfile(passphrase_credential(config)):
        raise ConfigError(
            "encryption",
            f"is passphrase, but systemd passed no '{PASSPHRASE_CREDENTIAL}' credential "
            f"(LoadCredential=); start the job with systemctl start {config['unit']}",
        )
    os.makedirs(gnupg_home(config["job"]), mode=0o700, exist_ok=True)


def check_stream_tools(config, compressor=None):
    """Fails before anything is stopped when the compressor or encryptor is not installed, or a
    passphrase job got no passphrase."""
    if compressor and not shutil.which(compressor[0]):
        raise ConfigError("compression", f"is {config['compression']}, but the {compressor[0]} command is not installed")
    encryptor = encryptor_argv(config)
    if encryptor and not shutil.which(encryptor[0]):
        raise ConfigError("encryption", f"needs the {encryptor[0]} command (Debian package {encryptor[0]}), which is not installed")
    if encryptor and config["encryption"]["method"] == "passphrase":
        check_passphrase_credential(config)

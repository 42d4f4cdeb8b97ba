"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads from its own
file server (unreachable where only package registries are): pip comes from the interpreter's
ensurepip, then pip installs the requested packages from the package index as usual."""

import ensurepip
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))

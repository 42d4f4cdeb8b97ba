"""The collection in an execution environment (AWX, Ansible Automation Platform): the definition
docs/awx.md documents goes through `ansible-builder create`, and the collection's control-node
requirements reach the image's build the way ansible-builder finds them.

`ansible-builder create` only writes the build context: the Containerfile, the galaxy requirements and
the files to copy. It does not look into collections: the image build installs them (the Containerfile's
galaxy stage) and then runs ansible-builder's introspect.py over the installed collections, which reads
each one's meta/execution-environment.yml. These tests run both of those steps here, without a container
runtime and without the network: the galaxy stage's install from the context, then `ansible-builder
introspect` (the same code) over what it installed."""

from __future__ import annotations

import filecmp
import re
import subprocess
import tarfile

import pytest
import yaml
from bindep.depends import Depends  # ansible-builder's own dependency, as the image build uses it

from conftest import BIN, REPO, _isolated_env

DOC = REPO / "docs" / "awx.md"
COLLECTION = "systemd_s3.backup"
# What `bindep` on a RHEL/CentOS 9 image (where ansible-builder installs system packages with dnf) selects by.
RPM_PROFILES = ["platform:rpm", "platform:redhat", "platform:rhel", "platform:rhel-9", "default"]


def _run(cmd, cwd, env=None):
    return subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, cwd=cwd, env=env or _isolated_env(), timeout=120)


def _documented_files():
    """The files docs/awx.md gives in full: each ```yaml block whose first line is `# <file name>`."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    named = {}
    for block in blocks:
        first = block.splitlines()[0]
        if re.fullmatch(r"# [\w./-]+\.yml", first):
            named[first[2:]] = block
    return named


def _requirement_lines(path):
    """A requirements or bindep file's entries, as ansible-builder reads them: no comments, no blank lines."""
    lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The documented EE directory (tarball + definition), the context `ansible-builder create` made of it,
    and the collections the context's galaxy stage installs."""
    work = tmp_path_factory.mktemp("ee")
    ee_dir = work / "ee"
    ee_dir.mkdir()
    build = _run([BIN / "ansible-galaxy", "collection", "build", REPO, "--output-path", ee_dir], work)
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(ee_dir.glob("systemd_s3-backup-*.tar.gz"))

    documented = _documented_files()
    assert "execution-environment.yml" in documented, "docs/awx.md must give the EE definition as a ```yaml block starting '# execution-environment.yml'"
    definition = ee_dir / "execution-environment.yml"
    definition.write_text(documented["execution-environment.yml"], encoding="utf-8")

    context = work / "context"
    create = _run([BIN / "ansible-builder", "create", "-f", definition, "-c", context, "--output-filename", "Containerfile", "-v", "3"], work)

    # The galaxy stage: `ansible-galaxy collection install -r requirements.yml` in the context's _build
    # (the image's /build). --offline: amazon.aws, the dependency, is taken from the ansible package here
    # (the image build downloads it from Galaxy).
    image_collections = work / "usr-share-ansible-collections"
    install = None
    if create.returncode == 0:
        env = _isolated_env({"ANSIBLE_COLLECTIONS_PATH": str(image_collections)})
        install = _run(
            [BIN / "ansible-galaxy", "collection", "install", "-r", "requirements.yml", "--collections-path", image_collections, "--offline"],
            context / "_build",
            env,
        )
    return {
        "work": work,
        "tarball": tarball,
        "definition": yaml.safe_load(definition.read_text(encoding="utf-8")),
        "context": context,
        "create": create,
        "install": install,
        "image_collections": image_collections,
    }


def test_the_tarball_ships_the_ee_metadata(built):
    names = tarfile.open(built["tarball"]).getnames()
    for name in ("meta/execution-environment.yml", "requirements.txt", "bindep.txt"):
        assert name in names, name
    # Development tools stay out: ansible-builder would otherwise find no such file, but users would.
    assert "requirements-dev.txt" not in names


def test_collection_metadata_points_at_the_control_node_requirements():
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert meta["version"] == 3
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    python = _requirement_lines(REPO / "requirements.txt")
    assert sorted(re.split(r"[<>=!~ ;\[]", line)[0] for line in python) == ["boto3", "botocore"], python
    # Nothing a test or the developer tooling needs (requirements-dev.txt) leaks into every user's image.
    dev_only = {re.split(r"[<>=!~ ;\[]", line)[0].lower() for line in _requirement_lines(REPO / "requirements-dev.txt")} - {"boto3", "botocore"}
    assert not dev_only & {re.split(r"[<>=!~ ;\[]", line)[0].lower() for line in python}


def test_bindep_selects_the_ssh_client_on_the_image_platform():
    depends = Depends((REPO / "bindep.txt").read_text(encoding="utf-8"))
    # ansible-builder installs system packages with dnf/microdnf: the rpm names must be the ones selected.
    assert [rule[0] for rule in depends.active_rules(RPM_PROFILES)] == ["openssh-clients"]
    assert [rule[0] for rule in depends.active_rules(["platform:dpkg", "platform:debian", "default"])] == ["openssh-client"]


def test_ansible_builder_create_writes_the_build_context(built):
    create = built["create"]
    assert create.returncode == 0, create.stdout + create.stderr
    context = built["context"]
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    # The collection travels inside the context, byte for byte the built tarball, named by the galaxy requirements.
    copied = context / "_build" / "collections" / built["tarball"].name
    assert copied.exists() and filecmp.cmp(copied, built["tarball"], shallow=False)
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert {"name": f"collections/{built['tarball'].name}", "type": "file"} in requirements["collections"]
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    # The step that turns the installed collections' metadata into the image's pip and bindep installs.
    assert "introspect.py introspect" in containerfile and "--write-pip=/tmp/src/requirements.txt" in containerfile
    assert "--write-bindep=/tmp/src/bindep.txt" in containerfile
    # The documented base image is what the Containerfile builds on.
    assert f'ARG EE_BASE_IMAGE="{built["definition"]["images"]["base_image"]["name"]}"' in containerfile


def test_documented_definition_names_this_version(built):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    assert built["tarball"].name == f"systemd_s3-backup-{version}.tar.gz"
    sources = [entry["src"] for entry in built["definition"]["additional_build_files"]]
    assert built["tarball"].name in sources, f"docs/awx.md: the EE definition must copy {built['tarball'].name} (galaxy.yml's version)"


def test_the_image_build_finds_the_collection_requirements(built):
    install = built["install"]
    assert install is not None and install.returncode == 0, install and install.stdout + install.stderr
    installed = built["image_collections"] / "ansible_collections" / "systemd_s3" / "backup"
    assert (installed / "meta" / "execution-environment.yml").exists()

    pip_out = built["work"] / "introspected-requirements.txt"
    bindep_out = built["work"] / "introspected-bindep.txt"
    introspect = _run(
        [BIN / "ansible-builder", "introspect", built["image_collections"], f"--write-pip={pip_out}", f"--write-bindep={bindep_out}"],
        built["work"],
    )
    assert introspect.returncode == 0, introspect.stdout + introspect.stderr
    # Exactly this collection's entries, attributed to it (the image build adds amazon.aws's own).
    origin = f"  # from collection {COLLECTION}"
    assert _pip_lines(pip_out) == [line + origin for line in _requirement_lines(REPO / "requirements.txt")]
    assert _pip_lines(bindep_out) == [line + origin for line in _requirement_lines(REPO / "bindep.txt")]


def _pip_lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_documented_project_playbooks_load_the_collection(built):
    """The AWX project's playbooks docs/awx.md gives parse against the collection as the image installs
    it, and the project's site.yml runs the same playbooks, in the same order, as this repository's."""
    install = built["install"]
    assert install is not None and install.returncode == 0
    documented = _documented_files()
    project = built["work"] / "project"
    project.mkdir()
    env = _isolated_env({"ANSIBLE_COLLECTIONS_PATH": str(built["image_collections"])})
    for name in ("site.yml", "freshness.yml", "restore.yml"):
        assert name in documented, f"docs/awx.md must give the project's {name}"
        (project / name).write_text(documented[name], encoding="utf-8")
        check = _run([BIN / "ansible-playbook", "--syntax-check", "-i", "localhost,", name], project, env)
        assert check.returncode == 0, check.stdout + check.stderr

    def imported(text, strip):
        return [re.sub(strip, "", play["ansible.builtin.import_playbook"]) for play in yaml.safe_load(text)]

    repo_site = imported((REPO / "site.yml").read_text(encoding="utf-8"), r"^playbooks/|\.yml$")
    assert imported(documented["site.yml"], r"^systemd_s3\.backup\.") == repo_site

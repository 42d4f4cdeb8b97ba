"""Writes jobs_list's options in roles/jobs/meta/argument_specs.yml from the contract's job fields
(plugins/module_utils/contract.py), their one home. tests/unit/plugins/module_utils/test_contract.py fails until this ran
after a change there:  python scripts/argument_specs.py"""

import importlib.util
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "roles" / "jobs" / "meta" / "argument_specs.yml"


def contract():
    spec = importlib.util.spec_from_file_location("contract", REPO / "plugins" / "module_utils" / "contract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as yamllint (ansible-lint's yaml rule) wants them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def rendered():
    """The file as it should be: the role's own text, with jobs_list's options from the contract."""
    specs = yaml.safe_load(SPECS.read_text())
    specs["argument_specs"]["main"]["options"]["jobs_list"]["options"] = contract().argument_spec_options()
    return "---\n" + yaml.dump(specs, Dumper=IndentedDumper, sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    SPECS.write_text(rendered())
    sys.exit(0)

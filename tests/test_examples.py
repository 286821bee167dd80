"""Every bundled example and standard-library module checks clean, and every trace passes."""

import subprocess
import sys
from importlib import resources

import pytest
from click.testing import CliRunner
from support import ROOT

from agp.cli import main
from agp.loader import check_paths

EXAMPLES = ROOT / "examples" / "policies"
SETS = sorted(p.parent for p in EXAMPLES.rglob("traces") if p.is_dir())
STDLIB = sorted(p.name for p in resources.files("agp.stdlib").iterdir() if p.name.endswith(".agp"))


def test_there_are_examples():
    assert len(SETS) >= 5


@pytest.mark.parametrize("policy_set", SETS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_checks_without_warnings_and_its_traces_pass(policy_set):
    _, diagnostics = check_paths([policy_set])
    assert [d.headline() for d in diagnostics] == []
    result = CliRunner().invoke(main, ["test", "-p", str(policy_set), str(policy_set / "traces")])
    assert result.exit_code == 0, result.output[-3000:]
    last = result.output.strip().splitlines()[-1]
    passed, failed = (int(w) for w in last.replace(",", "").split()[::2][:2])
    assert failed == 0 and passed > 0, last


@pytest.mark.parametrize("module", STDLIB)
def test_stdlib_module_checks_without_warnings(tmp_path, module):
    (tmp_path / "use.agp").write_text(f"import std.{module[:-4]}\n")
    _, diagnostics = check_paths([tmp_path])
    assert [d.headline() for d in diagnostics] == []


AGENTDOJO_DATA = EXAMPLES / "agentdojo" / "data"  # AgentDojo's user side, vendored (MIT)


def test_agentdojo_data_is_vendored_with_its_licence():
    # The repository carries the benchmark data itself, so the test below always runs.
    for suite in ("banking", "slack", "travel", "workspace"):
        for part in ("tools.json", "tasks.jsonl", "calls.jsonl", "environment.json"):
            assert (AGENTDOJO_DATA / f"{suite}.{part}").is_file(), f"{suite}.{part}"
    licence = (AGENTDOJO_DATA / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Copyright (c) 2024 Edoardo Debenedetti" in licence


def test_agentdojo_traces_are_generated_from_the_benchmark_and_attacks_fail():
    # No --data: the script's default must be the vendored copy.
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "agentdojo.py"), "--check",
                             "--attacks"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "attacks succeeding in any instance: 0" in result.stdout

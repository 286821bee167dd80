"""The repository installs as the one package `agp` (STYLE.md)."""

import re
import shutil
import subprocess
import sys

from support import DATA, ROOT, SPEC


def test_engine_is_not_importable_under_its_folder_name(tmp_path):
    # From outside the repository only `agp` exists; nothing called engine or lsp was installed.
    probe = "import importlib.util as u; print([bool(u.find_spec(n)) for n in "
    probe += "('agp', 'engine', 'lsp', 'grammar', 'stdlib')])"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[True, False, False, False, False]"


def test_grammar_and_stdlib_ship_as_package_data():
    from importlib import resources

    assert resources.files("agp.grammar").joinpath("agp.lark").is_file()
    assert resources.files("agp.stdlib").joinpath("intents.agp").is_file()


def test_console_script_runs():
    exe = shutil.which("agp")
    assert exe, "the agp console script is installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "check" in out and "eval" in out


def test_spec_copies_match_the_shared_spec():
    shared = ROOT.parent / "shared" / "spec"
    if not shared.is_dir():
        import pytest

        pytest.skip("no shared/ beside the checkout")
    language = (shared / "LANGUAGE.md").read_text()
    blocks = re.findall(r"```agp\n(.*?)```", language, re.S)
    # §6's session examples live beside the declaration they add (tests/data/sessions), outside
    # the policy set of §2-3 that many tests decide with.
    assert blocks == [(SPEC / "declarations.agp").read_text(), (SPEC / "rules.agp").read_text(),
                      (DATA / "sessions" / "sessions.agp").read_text()]


def test_readme_opens_with_two_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    assert "pip install" in blocks[0] and "agp " in blocks[0]
    assert "pytest" in blocks[1]
    assert sys.version_info >= (3, 11)


def test_readme_policy_checks_and_decides_as_shown():
    import agp
    from agp.interp import decide
    from agp.loader import check_sources
    from agp.source import Source

    text = (ROOT / "README.md").read_text()
    [block] = re.findall(r"```agp\n(.*?)```", text, re.S)
    policy, diagnostics = check_sources([Source("README.md", block)])
    assert diagnostics == []
    request = {"agent": {"id": "spiffe://acme.com/agents/support-bot"}, "tool": "payments.refund",
               "args": {"amount": 50, "customer": "c-42"},
               "task": {"kind": "support_ticket", "params": {"customer": "c-42"},
                        "started_at": "2026-11-28T10:00:00Z"},
               "now": "2026-11-28T10:01:00Z"}
    d = decide(policy, request)
    assert (d.decision, d.ttl, d.rules) == ("allow", 300, ["refund_small"])
    assert isinstance(d, agp.Decision)


def test_optional_libraries_load_only_for_the_features_that_need_them():
    # An engine without identity, and the commands that do not analyze, start without the JOSE
    # libraries and z3 (tens of milliseconds each at every start); trust loads the first.
    probe = (
        "import sys, agp\n"
        "heavy = ('jwt', 'cryptography', 'z3')\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        f"agp.load({str(DATA / 'spec')!r}).decide({{'agent': {{'id': 'a'}}, 'tool': 't'}})\n"
        "print(loaded())\n"
        f"agp.load({str(DATA / 'spec')!r}, trust={{'acme.com': {{'keys': []}}}}, audience='agp')\n"
        "print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[:2] == ["[]", "['cryptography', 'jwt']"]

"""The editor packages in editors/: the VS Code extension's manifest, TextMate grammar and client.

The grammar's scope assertions (editors/vscode/tests/*.test.agp) and the client's tests run through
npm (vscode-tmgrammar-test, node's test runner); they are skipped when npm is not on PATH. The
checks that the grammar keeps up with the language (keywords of agp.lark, the checker's builtin
functions) need only Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import pytest
from support import ROOT

from agp.stdlib.builtins import BUILTINS

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "agp.tmLanguage.json"
NPM = shutil.which("npm")
needs_npm = pytest.mark.skipif(
    NPM is None or shutil.which("node") is None,
    reason="npm is not on PATH: the VS Code grammar and client tests need Node.js and npm",
)
_NPM_ENV = {
    **os.environ,
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _regexes(node) -> list[str]:
    """Every match/begin/end regex of a TextMate grammar, however deeply nested."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_regexes(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_regexes(item))
    return found


# ---- the manifest and the grammar's coverage: plain Python ---------------------------------------


def test_vscode_manifest_contributes_the_agp_language():
    pkg = _json(VSCODE / "package.json")
    assert "onLanguage:agp" in pkg["activationEvents"]
    assert (VSCODE / pkg["main"]).is_file()
    [language] = [lang for lang in pkg["contributes"]["languages"] if lang["id"] == "agp"]
    assert language["extensions"] == [".agp"]
    config = _json(VSCODE / language["configuration"])
    assert config["comments"] == {"lineComment": "#"}
    assert {tuple(pair) for pair in config["brackets"]} == {("{", "}"), ("[", "]"), ("(", ")")}
    assert {"open": '"', "close": '"', "notIn": ["string", "comment"]} in config["autoClosingPairs"]
    [grammar] = [g for g in pkg["contributes"]["grammars"] if g["language"] == "agp"]
    assert _json(VSCODE / grammar["path"])["scopeName"] == grammar["scopeName"] == "source.agp"
    setting = pkg["contributes"]["configuration"]["properties"]["agp.server.path"]
    assert setting["type"] == "string" and setting["default"] == "agp"
    assert "vscode-languageclient" in pkg["dependencies"]
    assert "vscode-tmgrammar-test" in pkg["devDependencies"]
    # `npm ci` needs a lock file that agrees with the manifest.
    lock = _json(VSCODE / "package-lock.json")
    assert lock["packages"][""]["devDependencies"] == pkg["devDependencies"]
    assert lock["packages"][""]["dependencies"] == pkg["dependencies"]


def test_grammar_highlights_every_keyword_of_the_parser():
    lark = files("agp.grammar").joinpath("agp.lark").read_text(encoding="utf-8")
    keywords = set(re.findall(r'"([a-z_]+)"', lark))
    assert {"permit", "forbid", "ask", "delegate", "max_ttl", "matches"} <= keywords
    regexes = "\n".join(_regexes(_json(GRAMMAR)))
    missing = sorted(
        k for k in keywords if not re.search(rf"(?<![A-Za-z_]){k}(?![A-Za-z_])", regexes)
    )
    assert missing == [], f"keywords of agp.lark that the TextMate grammar never matches: {missing}"


def test_grammar_knows_exactly_the_checkers_builtin_functions():
    repository = _json(GRAMMAR)["repository"]
    builtin_rules = [
        rule["match"]
        for rule in repository["expression"]["patterns"]
        if "support.function.builtin.agp" in json.dumps(rule)
    ]
    assert len(builtin_rules) == 1
    alternation = re.search(r"\(((?:\w+\|)+\w+)\)", builtin_rules[0]).group(1)
    assert set(alternation.split("|")) == set(BUILTINS)


def _code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, re.M | re.S)


def test_documented_set_ups_let_the_server_find_the_policy_sets():
    # The server finds each file's policy set inside whatever root the editor gives it
    # (tests/lsp/test_sets.py drives it with a repository root holding two sets). The documented
    # set-ups must give it a root that contains the sets (the repository, not a guess at the set)
    # and let it hear of files changed on disk.
    readme = (VSCODE.parent / "README.md").read_text(encoding="utf-8")
    lua = _code_blocks(readme, "lua")
    neovim = [block for block in lua if '"agp", "lsp"' in block]
    assert len(neovim) == 2  # Neovim 0.11 (vim.lsp.config) and 0.10 (nvim-lspconfig)
    assert 'vim.fs.root(file, ".git")' in neovim[0] and "root_dir = agp_root" in neovim[1]
    for block in neovim:
        assert "didChangeWatchedFiles = { dynamicRegistration = true }" in block
        assert "root_markers" not in block
    [helix] = [tomllib.loads(block) for block in _code_blocks(readme, "toml")]
    [language] = helix["language"]
    assert language["roots"] == [".git"] and language["language-servers"] == ["agp"]
    # VS Code: the workspace folder is the root; the server registers the file watcher itself,
    # and a watcher of the extension's own would report every change twice.
    js = (VSCODE / "extension.js").read_text(encoding="utf-8").splitlines()
    assert not [line for line in js if "synchronize" in line and not line.strip().startswith("//")]


# ---- through npm: vscode-tmgrammar-test and node's test runner -----------------------------------


@contextmanager
def _install_lock():
    """Serialises `npm ci` between pytest processes (pytest-xdist workers) on one machine."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: run unserialised
        yield
        return
    with open(Path(tempfile.gettempdir()) / "agp-editors-npm.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed() -> bool:
    tool = VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test"
    marker = VSCODE / "node_modules" / ".package-lock.json"  # written by npm on every install
    return (
        tool.exists()
        and marker.exists()
        and marker.stat().st_mtime >= (VSCODE / "package-lock.json").stat().st_mtime
    )


@pytest.fixture(scope="module")
def npm_ready():
    with _install_lock():
        if not _installed():
            done = subprocess.run(
                [NPM, "ci"], cwd=VSCODE, env=_NPM_ENV, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"npm ci failed in {VSCODE}:\n{done.stdout}\n{done.stderr}"
    assert _installed()


def _npm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NPM, *args], cwd=VSCODE, env=_NPM_ENV, capture_output=True, text=True, timeout=timeout
    )


@needs_npm
def test_grammar_scope_assertions_pass(npm_ready):
    samples = sorted(p.name for p in (VSCODE / "tests").glob("*.test.agp"))
    assert len(samples) >= 4
    done = _npm("run", "--silent", "test:grammar")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    passed = re.findall(
        r"✓ tests/(\S+\.test\.agp) run successful", output.replace("successfuly", "successful")
    )
    assert sorted(passed) == samples, output


@needs_npm
def test_grammar_runner_fails_on_a_wrong_scope(npm_ready, tmp_path):
    # The assertions are only worth something if a wrong one fails the run.
    source = (VSCODE / "tests" / "rules.test.agp").read_text(encoding="utf-8")
    assert "keyword.control.effect.permit.agp" in source
    wrong = tmp_path / "wrong.test.agp"
    wrong.write_text(
        source.replace("keyword.control.effect.permit.agp", "keyword.control.effect.forbid.agp", 1),
        encoding="utf-8",
    )
    done = _npm(
        "exec", "--", "vscode-tmgrammar-test", "--config", str(VSCODE / "package.json"), str(wrong)
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "missing required scopes: keyword.control.effect.forbid.agp" in output


@needs_npm
def test_vscode_client_starts_agp_lsp(npm_ready):
    done = _npm("run", "--silent", "test:client")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert re.search(r"^# pass [1-9]", output, re.M) and re.search(r"^# fail 0$", output, re.M), (
        output
    )

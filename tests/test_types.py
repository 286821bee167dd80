"""The product type-checks under `mypy --strict` (issue 17), as configured in pyproject.toml.

mypy reads the code as the installed package `agp` through the link tree `.typecheck/` (the
comment of `[tool.mypy]` says why); the first test keeps that tree equal to setuptools'
package-dir, so that a new folder mapping cannot go unchecked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from support import ROOT

TREE = ROOT / ".typecheck"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _links() -> dict[Path, str]:
    """Every symlink under .typecheck/ and what it points to, as written."""
    found = {}
    for folder, dirs, files in os.walk(TREE):  # does not follow the links to directories
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                found[path.relative_to(TREE)] = os.readlink(path)
    return found


def test_the_link_tree_is_the_package_dir_mapping():
    # One root per package-dir entry: `.typecheck/<folder>/<package as a path>` -> <folder>,
    # by a relative link, so that a clone anywhere type-checks.
    package_dir = CONFIG["tool"]["setuptools"]["package-dir"]
    expected = {}
    for package, folder in package_dir.items():
        link = Path(folder, *package.split("."))
        expected[link] = os.path.relpath(ROOT / folder, (TREE / link).parent)
    assert _links() == expected, "make .typecheck/ match [tool.setuptools.package-dir]"
    for link in expected:
        assert (TREE / link).resolve() == (ROOT / link.parts[0]).resolve()
    mypy = CONFIG["tool"]["mypy"]
    assert mypy["mypy_path"] == [f"$MYPY_CONFIG_FILE_DIR/.typecheck/{folder}"
                                 for folder in package_dir.values()]
    assert mypy["packages"] == list(package_dir)
    assert mypy["strict"] is True


def test_mypy_strict_finds_no_error():
    # A bare `mypy` from the repository root, as a developer runs it.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout

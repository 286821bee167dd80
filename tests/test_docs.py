"""Every code example in the docs runs, and says what really happens (issue 6).

Fences: ```agp is a complete policy that checks with no diagnostic and becomes the current policy
of its page; ```agp-fragment is not checked; ```json request is decided against the current
policy; ```json decision lists fields the previous request's decision must have; ```jsonl trace
is replayed against the current policy and every `expect` must hold; ```python runs from the
repository root. Other fences (sh, text, ...) are not run.
"""

import json
import re
import subprocess
import sys

import pytest
from support import ROOT

import agp
from agp.loader import check_paths

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)
PAGES = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "examples").rglob("README.md"))


def blocks(page):
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        yield text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_in_page(page, tmp_path):
    problems, engine, decision, ran = [], None, None, 0
    for n, (line, info, body) in enumerate(blocks(page)):
        where = f"{page.name}:{line}"
        if info == "agp":
            path = tmp_path / f"block{n}.agp"
            path.write_text(body, encoding="utf-8")
            _, diagnostics = check_paths([path])
            if diagnostics:
                problems.append(f"{where}: {[d.headline() for d in diagnostics]}")
                engine = None
            else:
                engine = agp.load(path)
        elif info == "json request":
            assert engine is not None, f"{where}: a request with no policy above it"
            decision = engine.decide(json.loads(body))
        elif info == "json decision":
            assert decision is not None, f"{where}: a decision with no request above it"
            for field, value in json.loads(body).items():
                if getattr(decision, field) != value:
                    problems.append(f"{where}: {field} is {getattr(decision, field)!r}, "
                                    f"the page says {value!r}")
        elif info == "jsonl trace":
            assert engine is not None, f"{where}: a trace with no policy above it"
            path = tmp_path / f"block{n}.trace.jsonl"
            path.write_text(body, encoding="utf-8")
            for outcome in agp.replay_trace(engine, path):
                if outcome.passed is False or outcome.problem:
                    problems.append(f"{where}+{outcome.line - 1}: {outcome.problem or 'expect fails'}")
        elif info == "python":
            result = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True,
                                    text=True, timeout=120)
            if result.returncode:
                problems.append(f"{where}: {result.stderr[-1500:]}")
        else:
            continue
        ran += 1
    assert problems == []
    if page.parent.name == "docs" and page.stem in ("tutorial", "language", "embedding"):
        assert ran > 0, "this page is expected to carry runnable examples"

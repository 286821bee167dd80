"""Every code example in the docs runs, and says what really happens (issue 6); the docs stand
alone (issue 16 item 19).

Fences: ```agp is a complete policy that checks with no diagnostic and becomes the current policy
of its page; ```agp diagnostic=CODE is a policy that `agp check` reports CODE for; ```agp-fragment
is not checked; ```json request is decided against the current policy (a request the page shows
as invalid must be followed by a ```json decision saying `request.invalid`); ```json decision lists
fields the previous request's decision must have; ```jsonl trace is replayed against the current
policy and every `expect` must hold; ```python runs from the repository root; ```json and
```jsonl must at least be valid JSON. Other fences (sh, text, ...) are not run.
"""

import json
import re
import subprocess
import sys

import pytest
from support import ROOT

import agp
from agp.envelope import CODES as ENVELOPE_CODES
from agp.loader import check_paths

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)
PAGES = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "examples").rglob("README.md"))
MUST_RUN = ("tutorial", "language", "embedding", "formats", "codes")


def blocks(page):
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        yield text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_in_page(page, tmp_path):
    problems, engine, decision, ran = [], None, None, 0
    unexplained_invalid = None  # a request denied as request.invalid that the page has not shown
    for n, (line, info, body) in enumerate(blocks(page)):
        where = f"{page.name}:{line}"
        if unexplained_invalid and info != "json decision":
            problems.append(f"{unexplained_invalid}: request.invalid, and the page does not say so")
            unexplained_invalid = None
        if info == "agp":
            path = tmp_path / f"block{n}.agp"
            path.write_text(body, encoding="utf-8")
            _, diagnostics = check_paths([path])
            if diagnostics:
                problems.append(f"{where}: {[d.headline() for d in diagnostics]}")
                engine = None
            else:
                engine = agp.load(path)
        elif info.startswith("agp diagnostic="):
            code = info.removeprefix("agp diagnostic=")
            path = tmp_path / f"block{n}.agp"
            path.write_text(body, encoding="utf-8")
            _, diagnostics = check_paths([path])
            if code not in {d.code for d in diagnostics}:
                problems.append(f"{where}: no {code}, got {[d.headline() for d in diagnostics]}")
        elif info == "json request":
            assert engine is not None, f"{where}: a request with no policy above it"
            decision = engine.decide(json.loads(body))
            if "request.invalid" in decision.rules:
                unexplained_invalid = f"{where} ({decision.errors})"
        elif info == "json decision":
            assert decision is not None, f"{where}: a decision with no request above it"
            expected = json.loads(body)
            for field, value in expected.items():
                if getattr(decision, field) != value:
                    problems.append(f"{where}: {field} is {getattr(decision, field)!r}, "
                                    f"the page says {value!r}")
            if "request.invalid" in expected.get("rules", ()):
                unexplained_invalid = None
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
        elif info in ("json", "jsonl"):
            lines = [body] if info == "json" else [
                x for x in body.splitlines() if x.strip() and not x.lstrip().startswith("//")]
            for text in lines:
                try:
                    json.loads(text)
                except ValueError as exc:
                    problems.append(f"{where}: not JSON: {exc}")
        else:
            continue
        ran += 1
    if unexplained_invalid:
        problems.append(f"{unexplained_invalid}: request.invalid, and the page does not say so")
    assert problems == []
    if page.parent.name == "docs" and page.stem in MUST_RUN:
        assert ran > 0, "this page is expected to carry runnable examples"


# ---- the docs stand alone --------------------------------------------------------------------

OUTSIDE = re.compile(r"\.\./shared|shared/spec|shared/agentdojo")


def _published_files():
    """README.md and every text file under docs/, examples/ and editors/ (dependencies aside)."""
    yield ROOT / "README.md"
    for top in ("docs", "examples", "editors"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "node_modules" not in path.parts:
                yield path


def test_no_published_file_points_outside_the_repository():
    # A clone has no ../shared: the README, the docs, the examples and the editor set-ups must
    # not send readers there.
    found = []
    for path in _published_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (icons, bundles)
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_outside_pattern_catches_what_it_must():
    assert OUTSIDE.search("see ../shared/spec/LANGUAGE.md")
    assert OUTSIDE.search("data in shared/agentdojo/")
    assert not OUTSIDE.search("a shared 2-CPU machine; the shared grant_ttl")


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    # Standing alone also means no dead link: every relative link names a file of the repository
    # and, when it has one, an anchor of a heading there.
    dead = []
    for page in [ROOT / "README.md", *PAGES]:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                dead.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = FENCE.sub("", linked.read_text(encoding="utf-8"))
                if anchor not in {_slug(h) for h in re.findall(r"^#+ (.+)$", headings, re.M)}:
                    dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []


CODES_PAGE = ROOT / "docs" / "codes.md"
# `error("code", ...)` and `warning("code", ...)` in the engine, also across a line break.
DIAGNOSTIC_CALL = re.compile(r"\b(?:error|warning)\(\s*\"([a-z]+(?:-[a-z]+)*)\"")


def _documented_codes() -> set[str]:
    """The codes named in backquotes in the page's headings and in the first cells of its tables."""
    text = CODES_PAGE.read_text(encoding="utf-8")
    places = re.findall(r"^### (.+)$", text, re.M) + re.findall(r"^\| ([^|]+) \|", text, re.M)
    return {code for place in places for code in re.findall(r"`([a-z][a-z.-]*)`", place)}


def test_every_decision_code_is_documented():
    documented = _documented_codes()
    missing = [c for c in (*ENVELOPE_CODES, "default.deny") if c not in documented]
    assert missing == []


def test_every_checker_code_is_documented():
    engine_source = "\n".join(p.read_text(encoding="utf-8")
                              for p in sorted((ROOT / "engine").rglob("*.py")))
    codes = set(DIAGNOSTIC_CALL.findall(engine_source))
    # Codes built at run time, or passed down to a helper: `unknown-<kind>` for declared names,
    # and the loader's file problems.
    codes |= {"unknown-class", "unknown-intent", "unknown-agent", "unknown-task", "io", "limit"}
    assert {"syntax", "duplicate", "unknown-name", "type-mismatch"} <= codes  # the scan works
    assert sorted(codes - _documented_codes()) == []

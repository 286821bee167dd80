"""Coverage-guided fuzzing of agp with atheris (an optional dev tool, not run in CI).

    pip install atheris
    python tests/fuzz/fuzz_agp.py policy -atheris_runs=200000
    python tests/fuzz/fuzz_agp.py request CORPUS_DIR -atheris_runs=200000   # seed it with requests

`policy` feeds arbitrary bytes to the parser and checker: only PolicyError may escape, and every
diagnostic must point inside the file. `request` feeds arbitrary JSON text to the evaluator of the
LANGUAGE.md example policy: `decide` must never raise, and a request that does not validate is
never allowed. The hypothesis tests in tests/ check the same properties in CI.
"""

import json
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import agp
    from agp.loader import check_sources
    from agp.model import RequestError, parse_request
    from agp.source import Source

SPEC = Path(__file__).resolve().parent.parent / "data" / "spec"


def fuzz_policy(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _, diagnostics = check_sources([Source("fuzz.agp", text)])
    for d in diagnostics:
        assert 0 <= d.span.start <= d.span.end <= len(text) or d.span.source.name != "fuzz.agp"


ENGINE = None


def fuzz_request(data: bytes) -> None:
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return
    decision = ENGINE.decide(value)
    try:
        parse_request(value)
    except RequestError:
        assert decision.decision == "deny"


def main() -> None:
    global ENGINE
    target = sys.argv.pop(1) if len(sys.argv) > 1 else "policy"
    if target == "request":
        ENGINE = agp.load(SPEC)
        atheris.Setup(sys.argv, fuzz_request)
    else:
        atheris.Setup(sys.argv, fuzz_policy)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

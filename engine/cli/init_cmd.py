"""`agp init [DIR]`: a starter policy set, a trace that tests it, and a CI workflow."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

import click

from agp import __version__
from agp.cli.common import EXIT_OK, echo, fail

POLICY = """\
# A starter policy set: one agent, the tools it calls, the task it serves, and what it may do.
# Check it with `agp check --strict policies`; test it with `agp test -p policies traces`.
import std.intents

dataclass public
dataclass internal > public
dataclass pii > internal

## The assistant, identified by its workload identity (a SPIFFE ID; globs are allowed).
agent assistant "spiffe://example.com/agents/assistant"

tool docs.search {
  intent read
  data internal
  args { query: string }
}
tool email.send {
  intent write, egress
  data pii
  args { recipient: string, subject: string, body: string }
}

## Answer one customer's question: search the docs, reply by email, within 30 minutes.
task answer_question {
  params  { customer: string }
  tools   docs.search, email.send
  intents read, write, egress
  data    <= pii
  ttl     30m
}

defaults {
  ttl     5m
  max_ttl 30m
}

permit search on docs.search in answer_question by assistant

permit reply on email.send in answer_question by assistant
  when args.recipient == task.params.customer

ask other_recipient on email.send
  when args.recipient != task.params.customer
  because "the assistant writes to the customer it serves; anyone else needs a human"
"""

AGENT = "spiffe://example.com/agents/assistant"
CUSTOMER = "ana@example.org"


def _event(ts: str, event: str, **fields: object) -> dict[str, object]:
    return {"ts": f"2026-01-05T{ts}Z", "event": event, **fields}


def _call(ts: str, tool: str, args: dict[str, str], expect: dict[str, object]
          ) -> dict[str, object]:
    return _event(ts, "call", task="q-1", agent=AGENT, tool=tool, args=args, expect=expect)


def _email(recipient: str) -> dict[str, str]:
    return {"recipient": recipient, "subject": "Your question", "body": "..."}


TRACE_LINES = [
    "// A recorded session of the assistant, one event a line. Each `expect` is what the policy",
    "// must decide; `agp test` replays the session and checks them all.",
    _event("09:00:00", "task.start",
           task={"id": "q-1", "kind": "answer_question", "params": {"customer": CUSTOMER}},
           agent=AGENT, chain=[{"principal": f"user:{CUSTOMER}", "kind": "human"}]),
    _call("09:01:00", "docs.search", {"query": "refund policy"},
          {"decision": "allow", "ttl": 300, "rules": ["search"]}),
    _call("09:02:00", "email.send", _email(CUSTOMER), {"decision": "allow", "rules": ["reply"]}),
    "// Writing to anyone else is held for a human.",
    _call("09:03:00", "email.send", _email("someone@elsewhere.example"),
          {"decision": "ask", "rules": ["other_recipient"]}),
    "// A tool outside the task is denied, whatever the rules say.",
    _call("09:04:00", "shell.exec", {"command": "ls"}, {"decision": "deny", "rules": ["scope.tool"]}),
    "// Near the end of the task, a grant lasts only as long as the task.",
    _call("09:28:00", "docs.search", {"query": "shipping"},
          {"decision": "allow", "ttl": 120, "rules": ["search"]}),
    _event("09:29:00", "task.end", task="q-1"),
    "// Once the task has ended, nothing more is granted for it.",
    _call("09:29:30", "docs.search", {"query": "returns"},
          {"decision": "deny", "rules": ["task.ended"]}),
]

TRACE = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in TRACE_LINES)

CHECK = "agp check --strict policies"
TEST = "agp test -p policies traces"


def workflow(working_directory: str | None) -> str:
    """The GitHub Actions workflow; other CI systems run the same two commands."""
    defaults = (f"    defaults:\n      run:\n        working-directory: {working_directory}\n"
                if working_directory else "")
    return f"""\
# Written by `agp init`: check the policy set and replay its traces on every change.
# Other CI systems run the same two commands: {CHECK} && {TEST}
name: agp
on: [push, pull_request]
jobs:
  policies:
    runs-on: ubuntu-latest
{defaults}    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      # Install agp the way your project does (a pinned version, a wheel, a git URL).
      - run: pip install "agp=={__version__}"
      - run: {CHECK}
      - run: {TEST}
"""


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def command(directory: str) -> None:
    """Write a starter policy set into DIRECTORY (default: the current one).

    Writes `policies/starter.agp` (an agent, its tools, a task, three rules),
    `traces/starter.trace.jsonl` (a recorded session whose expectations the policy meets) and
    `.github/workflows/agp.yml` (CI that runs `agp check --strict policies` and `agp test -p
    policies traces`). Existing files are never overwritten: if any of the three exists,
    nothing is written. Exit status: 0 written, 2 bad usage (a file exists, DIRECTORY is not
    writable).
    """
    root = Path(directory)
    relative = PurePosixPath(*root.parts) if not root.is_absolute() else None
    inside = str(relative) if relative is not None and str(relative) != "." else None
    files = {
        root / "policies" / "starter.agp": POLICY,
        root / "traces" / "starter.trace.jsonl": TRACE,
        root / ".github" / "workflows" / "agp.yml": workflow(inside),
    }
    existing = [str(f) for f in files if f.exists()]
    if existing:
        fail(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
             "agp init never overwrites a file (nothing was written)")
    written = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="utf-8") as f:  # "x": fails if created meanwhile
                f.write(text)
            written.append(path)
    except OSError as exc:
        for path in written:  # all or nothing
            path.unlink(missing_ok=True)
        fail(f"cannot write {exc.filename or directory}: {exc.strerror or exc}")
    for path in files:
        echo(f"wrote {path}")
    where = "" if inside is None else f"cd {directory} && "
    echo()
    echo("Next:")
    echo(f"  {where}{CHECK}    # the policy set has no error and no warning")
    echo(f"  {where}{TEST}     # the recorded session decides as expected")
    if inside is not None:
        echo(f"  GitHub runs workflows from the repository root: move {directory}/.github/"
             "workflows/agp.yml there (it already runs in this directory).")
    sys.exit(EXIT_OK)

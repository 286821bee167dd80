"""Every example of LANGUAGE.md and FORMATS.md, exactly as written."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from support import SPEC, deep, load_data, load_text, outcome

import agp
from agp.cli import main

BOT = "spiffe://acme.com/agents/support-bot"
BILLING_EU = "spiffe://acme.com/agents/billing/eu-1"
ALICE = {"principal": "user:alice", "kind": "human"}


def formats_request() -> dict:
    return json.loads((SPEC / "request.json").read_text())


@pytest.fixture(scope="module")
def spec():
    return load_data("spec")


def test_spec_policy_checks_clean(monkeypatch):
    monkeypatch.chdir(SPEC.parent)
    result = CliRunner().invoke(main, ["check", "spec"])
    assert result.exit_code == 0, result.output
    assert "error[" not in result.output
    # Every tool pattern of the example matches a declaration: nothing to warn about either.
    assert "warning[" not in result.output


def test_spec_policy_directory_checks_clean():
    result = CliRunner().invoke(main, ["check", str(SPEC)])
    assert result.exit_code == 0, result.output
    assert "error[" not in result.output


def test_spec_policy_as_one_file_loads():
    text = (SPEC / "declarations.agp").read_text() + "\n" + (SPEC / "rules.agp").read_text()
    engine = load_text(text)
    d = engine.decide(formats_request())
    assert d.decision == "allow"
    assert d.ttl == 240


def test_formats_request_decision_exact(spec):
    d = spec.decide(formats_request())
    assert outcome(d) == {
        "decision": "allow",
        "ttl": 240,
        "rules": ["refund_small"],
        "reasons": [],
        "errors": [],
    }
    assert d.allowed is True
    assert isinstance(d.policy, str)
    assert re.fullmatch(r"sha256:[0-9a-f]+", d.policy), d.policy


def test_formats_request_via_request_model(spec):
    request = agp.Request.model_validate(formats_request())
    d = spec.decide(request)
    assert (d.decision, d.ttl, list(d.rules)) == ("allow", 240, ["refund_small"])


def test_formats_request_cli_eval(tmp_path):
    req = tmp_path / "req.json"
    req.write_text(json.dumps(formats_request()))
    result = CliRunner().invoke(main, ["eval", "-p", str(SPEC), str(req)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {k: out[k] for k in ("decision", "ttl", "rules", "reasons", "errors")} == {
        "decision": "allow",
        "ttl": 240,
        "rules": ["refund_small"],
        "reasons": [],
        "errors": [],
    }
    assert out["policy"].startswith("sha256:")


def test_formats_request_cli_eval_stdin():
    result = CliRunner().invoke(
        main, ["eval", "-p", str(SPEC)], input=json.dumps(formats_request())
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["decision"], out["ttl"], out["rules"]) == ("allow", 240, ["refund_small"])


# --- The example trace of FORMATS.md, each call built by hand as the replay would build it. ---

TASK = {"id": "t-81", "kind": "support_ticket", "params": {"customer": "c-42"},
        "started_at": "2026-11-28T10:00:00Z"}
CHAIN_BOT = [ALICE, {"principal": BOT, "kind": "agent"}]
CHAIN_BILLING = CHAIN_BOT + [
    {"principal": BILLING_EU, "kind": "agent", "at": "2026-11-28T10:01:00Z",
     "scope": {"tools": ["payments.refund"], "ttl": "5m"}}
]


def test_trace_first_lookup_allowed(spec):
    d = spec.decide({
        "agent": {"id": BOT}, "task": deep(TASK), "chain": deep(CHAIN_BOT),
        "tool": "crm.lookup", "args": {"customer": "c-42"},
        "target": {"host": "crm.internal", "external": False},
        "now": "2026-11-28T10:00:05Z",
    })
    assert d.decision == "allow"
    assert list(d.rules) == ["lookups"]
    # `lookups` sets no ttl: defaults.ttl 15m, below the task's remaining 29m55s and max_ttl 1h.
    assert d.ttl == 900
    assert list(d.errors) == []


def test_trace_lookup_without_target_is_not_permitted(spec):
    # "without it that permit would not match": reading target.external is an evaluation error.
    d = spec.decide({
        "agent": {"id": BOT}, "task": deep(TASK), "chain": deep(CHAIN_BOT),
        "tool": "crm.lookup", "args": {"customer": "c-42"},
        "now": "2026-11-28T10:00:05Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]
    assert d.errors, "the failed read of target.external must be reported"


def test_trace_delegated_refund(spec):
    d = spec.decide({
        "agent": {"id": BILLING_EU}, "task": deep(TASK), "chain": deep(CHAIN_BILLING),
        "tool": "payments.refund", "args": {"amount": 40, "customer": "c-42"},
        "now": "2026-11-28T10:02:00Z",
    })
    assert (d.decision, d.ttl, list(d.rules)) == ("allow", 240, ["refund_small"])


def test_trace_delegate_cannot_lookup(spec):
    d = spec.decide({
        "agent": {"id": BILLING_EU}, "task": deep(TASK), "chain": deep(CHAIN_BILLING),
        "tool": "crm.lookup", "args": {"customer": "c-42"},
        "now": "2026-11-28T10:03:00Z",
    })
    assert d.decision == "deny"
    assert "delegation.scope" in d.rules
    assert d.ttl == 0


def test_trace_call_after_task_end(spec):
    d = spec.decide({
        "agent": {"id": BOT}, "task": deep(TASK), "chain": deep(CHAIN_BOT),
        "tool": "crm.lookup", "args": {"customer": "c-42"},
        "target": {"host": "crm.internal", "external": False},
        "now": "2026-11-28T10:04:01Z",
    }, task_ended=True)
    assert d.decision == "deny"
    assert "task.ended" in d.rules


def test_trace_file_replays_if_available(spec):
    replay = getattr(agp, "replay_trace", None)
    if replay is None:
        pytest.skip("agp.replay_trace is not there yet")
    outcomes = list(replay(spec, str(SPEC / "support.trace.jsonl")))
    assert len(outcomes) == 4
    assert [o.passed for o in outcomes] == [True] * 4, [o.problem for o in outcomes]


def test_trace_file_with_agp_test_if_available(tmp_path):
    if "test" not in getattr(main, "commands", {}):
        pytest.skip("`agp test` is not there yet")
    result = CliRunner().invoke(main, ["test", "-p", str(SPEC), str(SPEC / "support.trace.jsonl")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "4 passed, 0 failed"
    broken = tmp_path / "broken.trace.jsonl"
    broken.write_text((SPEC / "support.trace.jsonl").read_text().replace('"ttl": 240', '"ttl": 241'))
    result = CliRunner().invoke(main, ["test", "-p", str(SPEC), str(broken)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == "3 passed, 1 failed"


# --- The §3 rules one by one against the §2 declarations. ---

def _refund(amount, **over):
    request = formats_request()
    request["args"]["amount"] = amount
    request.update(over)
    return request


def test_refund_large_asks(spec):
    d = spec.decide(_refund(150))
    assert d.decision == "ask"
    assert list(d.rules) == ["refund_large"]
    assert list(d.reasons) == ["refunds above 100 need a human"]
    # An ask gets defaults.ttl (15m) bounded by the task (28m) and the hop (4m).
    assert d.ttl == 240


def test_refund_small_needs_matching_customer(spec):
    request = formats_request()
    request["args"]["customer"] = "c-99"
    d = spec.decide(request)
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]


def test_refund_small_by_clause(spec):
    # `by support_bot, billing`: the support bot acting directly is covered ...
    base = {"task": deep(TASK), "tool": "payments.refund",
            "args": {"amount": 40, "customer": "c-42"}, "now": "2026-11-28T10:02:00Z"}
    d = spec.decide({**deep(base), "agent": {"id": BOT}, "chain": deep(CHAIN_BOT)})
    assert (d.decision, list(d.rules)) == ("allow", ["refund_small"])
    # ... an agent matching neither pattern is not (it is the first agent: no delegation.to).
    other = "spiffe://acme.com/agents/other"
    d = spec.decide({**deep(base), "agent": {"id": other},
                     "chain": [ALICE, {"principal": other, "kind": "agent"}]})
    assert (d.decision, list(d.rules)) == ("deny", ["default.deny"])


def test_no_restricted_egress_forbids(spec):
    d = spec.decide({
        "agent": {"id": BOT}, "tool": "http.post", "data": ["restricted"],
        "target": {"host": "evil.example", "external": True},
        "now": "2026-11-28T10:00:00Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["no_restricted_egress"]
    assert list(d.reasons) == ["restricted data must not leave the organisation"]


def test_no_restricted_egress_not_for_internal_target(spec):
    d = spec.decide({
        "agent": {"id": BOT}, "tool": "http.post", "data": ["restricted"],
        "target": {"host": "intranet", "external": False},
        "now": "2026-11-28T10:00:00Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]


def test_deep_chains_forbid(spec):
    chain = [ALICE] + [{"principal": f"spiffe://acme.com/agents/a{i}", "kind": "agent"} for i in range(4)]
    d = spec.decide({
        "agent": {"id": chain[-1]["principal"]}, "chain": chain, "tool": "crm.lookup",
        "args": {"customer": "c-42"}, "now": "2026-11-28T10:00:00Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["deep_chains"]


def test_lookups_requires_task(spec):
    # `in support_ticket`: a request without a task is not in scope of the permit.
    d = spec.decide({
        "agent": {"id": BOT}, "tool": "crm.lookup", "args": {"customer": "c-42"},
        "target": {"host": "crm.internal", "external": False},
        "now": "2026-11-28T10:00:00Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]


def test_lookups_external_target_not_permitted(spec):
    d = spec.decide({
        "agent": {"id": BOT}, "task": deep(TASK), "chain": deep(CHAIN_BOT),
        "tool": "crm.lookup", "args": {"customer": "c-42"},
        "target": {"host": "crm.example", "external": True},
        "now": "2026-11-28T10:00:05Z",
    })
    assert d.decision == "deny"
    assert list(d.rules) == ["default.deny"]


def test_task_tools_glob_family(spec):
    # `tools crm.*` covers crm.notes.read (`*` crosses `.`); http.post is outside `http.get`.
    base = {"agent": {"id": BOT}, "task": deep(TASK), "chain": deep(CHAIN_BOT),
            "now": "2026-11-28T10:00:05Z"}
    inside = spec.decide({**deep(base), "tool": "crm.notes.read"})
    assert "scope.tool" not in inside.rules
    outside = spec.decide({**deep(base), "tool": "http.post"})
    assert outside.decision == "deny"
    assert "scope.tool" in outside.rules


def test_policy_hash_identifies_sources(tmp_path):
    a = agp.load(str(SPEC))
    b = agp.load(str(SPEC))
    assert a.decide(formats_request()).policy == b.decide(formats_request()).policy
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "declarations.agp").write_text((SPEC / "declarations.agp").read_text())
    (changed / "rules.agp").write_text(
        (SPEC / "rules.agp").read_text().replace("ttl 5m", "ttl 4m")
    )
    c = agp.load(str(changed))
    assert c.decide(formats_request()).policy != a.decide(formats_request()).policy

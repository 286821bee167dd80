"""`@agp.guard` (engine/integrations/guard.py) and the runnable example in examples/adapters."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from support import ROOT

import agp

EXAMPLE = ROOT / "examples" / "adapters"
AGENT = "spiffe://acme.com/agents/support-bot"


def example():
    spec = importlib.util.spec_from_file_location("scripted_agent", EXAMPLE / "scripted_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scripted_agent_example_runs_every_step_through_the_policy(capsys):
    assert asyncio.run(example().run()) == [
        "ok: c-42: 2 open orders",
        "denied by policy: crm.lookup (default.deny)",
        "ok: refunded 40 to c-42",
        "ok: refunded 300 to c-42",
        "needs approval: payments.refund (refunds over 100 need a human)",
        "denied by policy: crm.delete (an agent never deletes a customer)",
    ]


@pytest.fixture
def engine():
    return agp.load(EXAMPLE / "policy.agp")


def test_sync_function_runs_only_when_allowed(engine):
    ran = []

    @agp.guard(engine, tool="payments.refund", agent=AGENT)
    def refund(customer: str, amount: float = 10) -> str:
        ran.append((customer, amount))
        return "done"

    assert refund("c-1") == "done"  # defaults are part of the arguments decided
    with pytest.raises(agp.ApprovalRequired) as asked:
        refund("c-1", amount=500)
    assert asked.value.decision.rules == ["large_refunds"]
    assert isinstance(asked.value, agp.PolicyDenied) and isinstance(asked.value, PermissionError)
    assert ran == [("c-1", 10)]
    assert refund.__name__ == "refund"


def test_async_function_is_guarded_and_on_ask_may_be_async(engine):
    ran = []

    async def approve(decision: agp.Decision, args: dict) -> bool:
        return args["amount"] < 1000

    @agp.guard(engine, tool="payments.refund", agent=AGENT, on_ask=approve)
    async def refund(customer: str, amount: float) -> str:
        ran.append(amount)
        return "done"

    assert asyncio.run(refund("c-1", 500)) == "done"
    with pytest.raises(agp.ApprovalRequired):
        asyncio.run(refund("c-1", 5000))
    assert ran == [500]


def test_what_the_policy_cannot_read_is_denied_not_run(engine):
    @agp.guard(engine, tool="crm.lookup", agent=AGENT)
    def lookup(customer: object) -> str:
        raise AssertionError("must not run")

    with pytest.raises(agp.PolicyDenied) as denied:
        lookup(object())
    assert denied.value.decision.rules == ["request.invalid"]


def test_agent_and_task_are_read_at_each_call_and_default_tool_is_the_name(engine):
    tasks = engine.tasks()
    tasks.start({"id": "t-9", "kind": "support_ticket", "params": {"customer": "c-9"}},
                agent=AGENT)
    current = {"agent": "spiffe://acme.com/agents/other"}

    @agp.guard(tasks, tool="crm.lookup", agent=lambda: current["agent"], task=lambda: "t-9")
    def lookup(customer: str) -> str:
        return customer

    with pytest.raises(agp.PolicyDenied):
        lookup("c-9")
    current["agent"] = AGENT
    assert lookup("c-9") == "c-9"
    tasks.end("t-9")
    with pytest.raises(agp.PolicyDenied) as ended:
        lookup("c-9")
    assert "task.ended" in ended.value.decision.rules

    @agp.guard(engine, agent=AGENT)
    def delete(customer: str) -> None: ...

    with pytest.raises(agp.PolicyDenied):  # `delete` is no declared tool: default deny
        delete("c-1")

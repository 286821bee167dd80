"""The OpenAI Agents SDK adapter (engine/integrations/openai_agents.py), through the SDK's own
Runner with a scripted model (examples/adapters/openai_agents_agent.py): no network, no key."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, WebSearchTool, function_tool
from support import ROOT

import agp
from agp.integrations.openai_agents import guard_tools, tool_guardrail

EXAMPLE = ROOT / "examples" / "adapters"
AGENT = "spiffe://acme.com/agents/support-bot"
NAMES = {"lookup": "crm.lookup", "refund": "payments.refund", "delete": "crm.delete"}


def example() -> Any:
    spec = importlib.util.spec_from_file_location("openai_agents_agent",
                                                  EXAMPLE / "openai_agents_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_runs_allowed_calls_and_refuses_the_rest_with_the_policys_reasons(capsys):
    module = example()
    assert asyncio.run(module.run()) == [
        "c-42: 2 open orders",
        "denied by policy: crm.lookup; rules: default.deny",
        "refunded 40 to c-42",
        "refunded 300 to c-42",  # asked, approved
        "needs approval: payments.refund; rules: large_refunds; "
        "reasons: refunds over 100 need a human",  # asked, declined
        "denied by policy: crm.delete; rules: never_delete; "
        "reasons: an agent never deletes a customer",
    ]
    # Every call joined the task's session, the approved ask as an allow.
    _, history = module.tasks.session(module.TASK)
    assert [(h.tool, h.decision) for h in history] == [
        ("crm.lookup", "allow"), ("crm.lookup", "deny"), ("payments.refund", "allow"),
        ("payments.refund", "allow"), ("payments.refund", "ask"), ("crm.delete", "deny")]
    assert "asked about payments.refund" in capsys.readouterr().out


# ---- the guardrail on tools that record whether they ran --------------------------------------


@pytest.fixture
def ran() -> list[tuple[str, dict[str, Any]]]:
    return []


def recording_tools(ran: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    @function_tool
    def lookup(customer: str) -> str:
        """Look a customer up."""
        ran.append(("lookup", {"customer": customer}))
        return f"{customer}: ok"

    @function_tool
    async def refund(customer: str, amount: float) -> str:
        """Refund an amount to a customer."""
        ran.append(("refund", {"customer": customer, "amount": amount}))
        return "refunded"

    @function_tool
    def delete(customer: str) -> str:
        """Delete a customer."""
        ran.append(("delete", {"customer": customer}))
        return "deleted"

    return [lookup, refund, delete]


def play(plan: list[tuple[str, Any]], guardrail: Any, ran: list[Any]) -> tuple[list[str], Any]:
    """Run the scripted model's `plan` through an agent with the guarded recording tools; what
    the model saw for each call, and the run's result."""
    model = example().ScriptedModel(plan)
    agent = Agent(name="t", model=model, tools=guard_tools(recording_tools(ran), guardrail))
    result = asyncio.run(Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True)))
    return model.seen, result


def test_arguments_the_tool_could_read_differently_are_refused_and_never_run(ran):
    engine = agp.load(EXAMPLE / "policy.agp")
    guardrail = tool_guardrail(engine, agent=AGENT, names=NAMES)
    seen, result = play([
        ("refund", '{"customer": "c-1", "amount": 5000, "amount": 5}'),  # json.loads keeps 5
        ("refund", '{"customer": "c-1", "amount": NaN}'),
        ("refund", '["c-1", 5]'),
        ("refund", '{"customer": "c-1", "amount": 5}'),
    ], guardrail, ran)
    assert seen[0] == ("denied by policy: payments.refund; rules: request.invalid; "
                       "errors: args: duplicate key 'amount'")
    assert seen[1].startswith("denied by policy: payments.refund; rules: request.invalid")
    assert seen[2].startswith("denied by policy: payments.refund; rules: request.invalid")
    assert seen[3] == "refunded"
    assert ran == [("refund", {"customer": "c-1", "amount": 5})]
    # Each guardrail result carries the Decision JSON.
    infos = [r.output.output_info for r in result.tool_input_guardrail_results]
    assert [i["decision"] for i in infos] == ["deny", "deny", "deny", "allow"]


def test_an_ask_runs_only_on_an_explicit_yes_from_a_sync_or_async_on_ask(ran):
    engine = agp.load(EXAMPLE / "policy.agp")
    asked: list[tuple[str, list[str]]] = []

    async def on_ask(tool: str, decision: agp.Decision, args: dict[str, Any]) -> Any:
        asked.append((tool, decision.rules))
        await asyncio.sleep(0)
        return {600: True, 700: "yes", 800: False}[args["amount"]]  # only True approves

    guardrail = tool_guardrail(engine, agent=AGENT, names=NAMES, on_ask=on_ask)
    seen, _ = play([("refund", {"customer": "c-1", "amount": a}) for a in (600, 700, 800)],
                   guardrail, ran)
    assert seen[0] == "refunded"
    assert all(s.startswith("needs approval: payments.refund; rules: large_refunds")
               for s in seen[1:])
    assert asked == [("payments.refund", ["large_refunds"])] * 3
    assert ran == [("refund", {"customer": "c-1", "amount": 600})]
    # Without on_ask, an ask is refused at once.
    seen, _ = play([("refund", {"customer": "c-1", "amount": 600})],
                   tool_guardrail(engine, agent=AGENT, names=NAMES), ran)
    assert seen[0].startswith("needs approval:") and len(ran) == 1


def test_agent_and_task_may_be_read_at_each_call(ran):
    tasks = agp.load(EXAMPLE / "policy.agp").tasks()
    for task, customer in (("t-a", "c-a"), ("t-b", "c-b")):
        tasks.start({"id": task, "kind": "support_ticket", "params": {"customer": customer}},
                    agent=AGENT)
    current = ["t-a"]
    guardrail = tool_guardrail(tasks, agent=lambda: AGENT, task=lambda: current[0], names=NAMES)
    seen, _ = play([("lookup", {"customer": "c-a"})], guardrail, ran)
    current[0] = "t-b"
    seen += play([("lookup", {"customer": "c-a"})], guardrail, ran)[0]
    assert seen == ["c-a: ok", "denied by policy: crm.lookup; rules: default.deny"]
    assert [len(tasks.session(t)[1]) for t in ("t-a", "t-b")] == [1, 1]


def test_only_function_tools_can_be_guarded():
    guardrail = tool_guardrail(agp.load(EXAMPLE / "policy.agp"), agent=AGENT)
    with pytest.raises(TypeError, match="only function tools run input guardrails"):
        guard_tools([WebSearchTool()], guardrail)
    tools = recording_tools([])
    assert guard_tools(guard_tools(tools, guardrail), guardrail) == tools
    assert all(t.tool_input_guardrails == [guardrail] for t in tools)

"""A scripted agent (no model) whose tools are guarded by `@agp.guard`, sync and async.

Run it from the repository root: `python examples/adapters/scripted_agent.py`. The "agent" is a
fixed plan of tool calls, as a model would produce them; each call is decided by the policy in
examples/adapters/policy.agp, in one task, before the tool function runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import agp

AGENT = "spiffe://acme.com/agents/support-bot"
tasks = agp.load(Path(__file__).with_name("policy.agp")).tasks()


def approve(decision: agp.Decision, args: dict[str, Any]) -> bool:
    """Where a real application asks a human; this script approves refunds up to 500."""
    print(f"  asked: {'; '.join(decision.reasons)} -> ", end="")
    answer = args["amount"] <= 500
    print("approved" if answer else "declined")
    return answer


@agp.guard(tasks, tool="crm.lookup", agent=AGENT, task="t-1")
def lookup(customer: str) -> str:
    return f"{customer}: 2 open orders"


@agp.guard(tasks, tool="payments.refund", agent=AGENT, task="t-1", on_ask=approve)
async def refund(customer: str, amount: float) -> str:
    await asyncio.sleep(0)  # an async tool: an HTTP call in real life
    return f"refunded {amount:g} to {customer}"


@agp.guard(tasks, tool="crm.delete", agent=AGENT, task="t-1")
def delete(customer: str) -> str:
    return f"deleted {customer}"


PLAN: list[tuple[Any, dict[str, Any]]] = [
    (lookup, {"customer": "c-42"}),
    (lookup, {"customer": "c-7"}),  # not the task's customer
    (refund, {"customer": "c-42", "amount": 40}),
    (refund, {"customer": "c-42", "amount": 300}),  # asks; approved
    (refund, {"customer": "c-42", "amount": 900}),  # asks; declined
    (delete, {"customer": "c-42"}),
]


async def run() -> list[str]:
    """Play the plan; each step's outcome, as the agent would see it."""
    tasks.start({"id": "t-1", "kind": "support_ticket", "params": {"customer": "c-42"}},
                agent=AGENT, chain=[{"principal": "user:alice", "kind": "human"}])
    outcomes = []
    try:
        for tool, args in PLAN:
            print(f"{tool.__name__}({args})")
            try:
                result = tool(**args)
                if asyncio.iscoroutine(result):
                    result = await result
                outcomes.append(f"ok: {result}")
            except agp.PolicyDenied as refused:  # ApprovalRequired is one too
                outcomes.append(str(refused))
            print(f"  {outcomes[-1]}")
    finally:
        tasks.end("t-1")
    return outcomes


if __name__ == "__main__":
    asyncio.run(run())

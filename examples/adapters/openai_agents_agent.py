"""An OpenAI Agents SDK agent whose tools are guarded by agp, run with a scripted model.

Run it from the repository root (`pip install 'agp[openai-agents]'` first):

    python examples/adapters/openai_agents_agent.py

No model, no network, no API key: `ScriptedModel` plays a fixed plan of tool calls, as a real
model would emit them, through the SDK's own Runner, tools and tool input guardrails. Each call
is decided by examples/adapters/policy.agp, in one task, before the tool runs; what the "model"
gets back (a tool's output, or agp's refusal) is printed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agents import (
    Agent,
    Model,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    RunConfig,
    Runner,
    Usage,
    function_tool,
)
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

import agp
from agp.integrations.openai_agents import guard_tools, tool_guardrail

AGENT = "spiffe://acme.com/agents/support-bot"
TASK = "t-openai"
tasks = agp.load(Path(__file__).with_name("policy.agp")).tasks()

# What the model asks for, one tool call a turn (the arguments as an object, or as the raw JSON
# text a model sends); then it answers with the outputs it saw.
Plan = list[tuple[str, dict[str, Any] | str]]
PLAN: Plan = [
    ("lookup", {"customer": "c-42"}),
    ("lookup", {"customer": "c-7"}),  # not the task's customer: denied
    ("refund", {"customer": "c-42", "amount": 40}),
    ("refund", {"customer": "c-42", "amount": 300}),  # asks; approved
    ("refund", {"customer": "c-42", "amount": 900}),  # asks; declined
    ("delete", {"customer": "c-42"}),  # forbidden
]


class ScriptedModel(Model):
    """A Model that emits the plan's tool calls in turn, then a final message; it keeps what
    came back for each call (the tool outputs in its input) in `seen`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.seen: list[str] = []

    async def get_response(self, system_instructions: str | None, input: Any,
                           model_settings: ModelSettings, tools: Any, output_schema: Any,
                           handoffs: Any, tracing: ModelTracing, **_: Any) -> ModelResponse:
        outputs = [item["output"] for item in input if isinstance(item, dict)
                   and item.get("type") == "function_call_output"]
        self.seen = [str(o) for o in outputs]
        turn = len(outputs)
        if turn < len(self.plan):
            name, args = self.plan[turn]
            output: Any = ResponseFunctionToolCall(
                type="function_call", id=f"fc-{turn}", call_id=f"call-{turn}", name=name,
                arguments=args if isinstance(args, str) else json.dumps(args))
        else:
            output = ResponseOutputMessage(
                type="message", id="msg", role="assistant", status="completed",
                content=[ResponseOutputText(type="output_text", text="done", annotations=[])])
        return ModelResponse(output=[output], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")


@function_tool
def lookup(customer: str) -> str:
    """Look a customer up."""
    return f"{customer}: 2 open orders"


@function_tool
async def refund(customer: str, amount: float) -> str:
    """Refund an amount to a customer."""
    return f"refunded {amount:g} to {customer}"


@function_tool
def delete(customer: str) -> str:
    """Delete a customer."""
    return f"deleted {customer}"


def approve(tool: str, decision: agp.Decision, args: dict[str, Any]) -> bool:
    """Where a real application asks a human; this script approves refunds up to 500."""
    answer = tool == "payments.refund" and args["amount"] <= 500
    print(f"  asked about {tool}: {'; '.join(decision.reasons)} -> "
          + ("approved" if answer else "declined"))
    return answer


guardrail = tool_guardrail(tasks, agent=AGENT, task=TASK, on_ask=approve, names={
    "lookup": "crm.lookup", "refund": "payments.refund", "delete": "crm.delete"})


async def run() -> list[str]:
    """Run the agent on the plan; what came back for each call, as the model saw it."""
    model = ScriptedModel(PLAN)
    agent = Agent(name="support", instructions="Help the customer.", model=model,
                  tools=guard_tools([lookup, refund, delete], guardrail))
    tasks.start({"id": TASK, "kind": "support_ticket", "params": {"customer": "c-42"}},
                agent=AGENT, chain=[{"principal": "user:alice", "kind": "human"}])
    try:
        await Runner.run(agent, "Sort out customer c-42.",
                         run_config=RunConfig(tracing_disabled=True))
    finally:
        tasks.end(TASK)
    for (name, args), seen in zip(PLAN, model.seen, strict=True):
        print(f"{name}({args})\n  {seen}")
    return model.seen


if __name__ == "__main__":
    asyncio.run(run())

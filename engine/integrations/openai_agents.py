"""The OpenAI Agents SDK adapter (`pip install 'agp[openai-agents]'`): a tool input guardrail
that decides every function tool call with the policy before the tool runs.

    tasks = agp.load("policies/").tasks()
    policy = tool_guardrail(tasks, agent="spiffe://acme.com/agents/bot", task="t-1",
                            names={"lookup": "crm.lookup"}, on_ask=ask_a_human)
    agent = Agent(name="support", tools=guard_tools([lookup, refund], policy))

Allow runs the tool. Deny does not: the model gets, instead of the tool's output, the text
`denied by policy: TOOL; rules: ...; reasons: ...` (the guardrail's `reject_content`), so the
run goes on and the agent can change course. Ask runs the tool only when `on_ask(tool,
decision, args)` returns true (it may be async), and the approval then joins the task's session;
otherwise the model gets `needs approval: ...`. Every guardrail result carries the Decision JSON
as its `output_info`.

The call's arguments are read from the raw JSON the model sent with agp's strict reader: text
the tool would read differently (a duplicate key, a constant like NaN) or that is not a JSON
object is refused, never run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agents import FunctionTool, Tool, ToolGuardrailFunctionOutput, ToolInputGuardrail
from agents.tool_guardrails import ToolInputGuardrailData

from agp.integrations.guard import Guarded, Value, refusal
from agp.jsonio import JSONInputError, loads
from agp.model import Decision

if TYPE_CHECKING:
    from agp.engine import Engine
    from agp.runtime import TaskRuntime

AskTool = Callable[[str, Decision, dict[str, Any]], "bool | Awaitable[bool]"]


def tool_guardrail(decider: Engine | TaskRuntime, *, agent: Value, task: Value = None,
                   names: Mapping[str, str] | None = None, on_ask: AskTool | None = None,
                   name: str = "agp") -> ToolInputGuardrail[Any]:
    """A tool input guardrail deciding each call of the tools it is attached to.

    `decider` is a TaskRuntime (calls decided in `task`, joining its session) or an Engine
    (self-contained requests, no task). `agent` and `task` are strings, or callables read at
    every call (a context variable's `.get`). `names` maps the SDK's tool names (which cannot
    hold dots) to the policy's (`{"lookup": "crm.lookup"}`); a name not in it is decided as is.
    """

    async def decide(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        context = data.context
        tool = (names or {}).get(context.tool_name, context.tool_name)
        guarded = Guarded(decider, tool, agent, task, None)
        try:
            args = loads(context.tool_arguments or "{}")
            problem = None if isinstance(args, dict) else "not a JSON object"
        except JSONInputError as exc:
            problem = exc.message
        if problem is not None:  # nothing the model sent can be read as the call's args
            decision = Decision(decision="deny", ttl=0, rules=["request.invalid"],
                                errors=[f"args: {problem}"])
            return ToolGuardrailFunctionOutput.reject_content(
                refusal("denied by policy", tool, decision), output_info=decision.to_json())
        decision = guarded.decide(args)
        if decision.decision == "ask" and on_ask is not None:
            answer = on_ask(tool, decision, args)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is True:
                guarded.approved(args)
                return ToolGuardrailFunctionOutput.allow(output_info=decision.to_json())
        if decision.decision == "allow":
            return ToolGuardrailFunctionOutput.allow(output_info=decision.to_json())
        head = "denied by policy" if decision.decision == "deny" else "needs approval"
        return ToolGuardrailFunctionOutput.reject_content(
            refusal(head, tool, decision), output_info=decision.to_json())

    return ToolInputGuardrail(guardrail_function=decide, name=name)


def guard_tools(tools: Iterable[Tool], guardrail: ToolInputGuardrail[Any]) -> list[Tool]:
    """The tools, each function tool with `guardrail` first among its input guardrails.

    Raises TypeError for a tool that is not a function tool (a hosted tool, such as web search,
    runs at the model's provider, where no input guardrail can stop it): an agent given it
    would make calls the policy never saw.
    """
    guarded: list[Tool] = []
    for tool in tools:
        if not isinstance(tool, FunctionTool):
            raise TypeError(f"agp cannot guard the tool {getattr(tool, 'name', tool)!r}: only "
                            "function tools run input guardrails")
        rest = [g for g in tool.tool_input_guardrails or [] if g is not guardrail]
        tool.tool_input_guardrails = [guardrail, *rest]
        guarded.append(tool)
    return guarded

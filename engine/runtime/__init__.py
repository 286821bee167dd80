"""Tasks, traces and replay: the runtime side of agp (FORMATS.md, "Trace")."""

from agp.runtime.events import EventError, parse_event
from agp.runtime.tasks import TaskError, TaskRuntime
from agp.runtime.trace import (
                               Outcome,
                               Replay,
                               TraceError,
                               check_expect,
                               read_trace,
                               replay_trace,
                               trace_files,
)

__all__ = ["EventError", "Outcome", "Replay", "TaskError", "TaskRuntime", "TraceError",
           "check_expect", "parse_event", "read_trace", "replay_trace", "trace_files"]

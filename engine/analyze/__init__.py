"""`agp analyze`: proofs about a policy with the z3 SMT solver (docs/analyze.md).

- `analyze(policy)`: rules that never match, never decide, or repeat another one;
- `compare(old, new)`: what NEW decides more permissively than OLD, and the reverse, each
  difference with a request that both evaluators confirm;
- `query(policy, "data >= restricted and target.external")`: a request decided `allow` that
  satisfies a condition, or the proof that none exists.

The encoding is agp.analyze.encode; how a model becomes a confirmed request, agp.analyze.witness.
"""

from agp.analyze.compare import Comparison, Difference, QueryAnswer, Search, compare, query
from agp.analyze.encode import Approximation, Bounds
from agp.analyze.findings import CODES, Report, analyze

__all__ = ["CODES", "Approximation", "Bounds", "Comparison", "Difference", "QueryAnswer",
           "Report", "Search", "analyze", "compare", "query"]

"""`data <= X` with an undeclared class is an error, whatever the order of the set."""

import os
import subprocess
import sys

POLICY = "dataclass a\ndataclass b > a\nintent x\ntool t { intent x }\npermit p on t when data <= a\n"
PROBE = """
import agp, sys
d = agp.load(sys.argv[1], compiled=sys.argv[2] == "1").decide(
    {"agent": {"id": "u"}, "tool": "t", "data": ["b", "zz", "a"]})
print(d.decision, d.errors[-1].split(": ")[-1] if d.errors else "-")  # the rule's own error
"""


def test_unknown_class_errors_under_every_hash_seed(tmp_path):
    path = tmp_path / "p.agp"
    path.write_text(POLICY)
    seen = set()
    for seed in range(1, 7):
        for compiled in ("0", "1"):
            env = {**os.environ, "PYTHONHASHSEED": str(seed)}
            out = subprocess.run([sys.executable, "-c", PROBE, str(path), compiled], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip()
            seen.add(out)
    assert seen == {"deny unknown data class `zz`"}

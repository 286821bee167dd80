"""What identity costs per decision: a cached verified JWT-SVID vs. an asserted id, and minting a
grant (docs/identity.md). Run: `python bench/identity.py`.

Targets (issue 11): verifying a cached token < 20 µs, minting a grant < 100 µs.
"""

from __future__ import annotations

import tempfile
import timeit
from pathlib import Path

import agp
from agp.identity import keys

POLICY = "permit lookups on crm.lookup ttl 5m\n"
N = 20_000


def per_call(fn, n: int = N) -> float:
    best = min(timeit.repeat(fn, number=n, repeat=5))
    return best / n * 1e6


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "p.agp"
    path.write_text(POLICY)
    signer = keys.generate()
    trust = {"acme.com": {"keys": [{k: v for k, v in signer.items() if k not in ("d", "use")}]}}
    svid = keys.mint_svid(signer, "spiffe://acme.com/agents/bot", "agp", 3600)
    plain = agp.load(path)
    trusted = agp.load(path, trust=trust, audience="agp")
    granting = agp.load(path, trust=trust, audience="agp", issuer_key=keys.generate(),
                        issuer="agp://acme.com/pdp")
    asserted = {"agent": {"id": "spiffe://acme.com/agents/bot"}, "tool": "crm.lookup"}
    proven = {"agent": {"svid": svid}, "tool": "crm.lookup"}
    assert trusted.decide(proven).allowed and granting.decide(proven).grant
    base = per_call(lambda: plain.decide(asserted))
    verified = per_call(lambda: trusted.decide(proven))
    minted = per_call(lambda: granting.decide(proven), N // 4)
    print(f"decision, asserted id, no trust:        {base:7.1f} µs")
    print(f"decision, cached verified JWT-SVID:     {verified:7.1f} µs  "
          f"(+{verified - base:.1f} µs for verification)")
    print(f"decision with a signed grant (EdDSA):   {minted:7.1f} µs  "
          f"(+{minted - verified:.1f} µs to mint and record)")


if __name__ == "__main__":
    main()

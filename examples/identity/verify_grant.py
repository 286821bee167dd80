"""What a tool server does before it acts on a call: verify agp's grant for exactly that call.

    python verify_grant.py decision.json payments.refund '{"amount": 120, "order": "o-7"}'

It needs nothing from agp but its public JWKS (`agp keys public issuer.jwk`), here
example-keys/grants-jwks.json, and PyJWT. Exit status 0 when the grant is good for this call.
"""

import hashlib
import json
import sys
from pathlib import Path

import jwt

ISSUER = "agp://acme.com/pdp"
JWKS = json.loads((Path(__file__).parent / "example-keys" / "grants-jwks.json").read_text())


def verify_grant(token: str, tool: str, args: dict) -> dict:
    key = jwt.PyJWKSet.from_dict(JWKS)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["EdDSA", "ES256"], audience=tool, issuer=ISSUER,
                        options={"require": ["exp", "iat", "jti"]})
    # RFC 8785 canonical JSON, for arguments without floats or non-ASCII keys.
    body = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if claims["agp"]["args"] != "sha256:" + hashlib.sha256(body.encode()).hexdigest():
        raise PermissionError("the grant is for other arguments")
    return claims


if __name__ == "__main__":
    decision_file, tool, args = sys.argv[1:]
    grant = json.loads(Path(decision_file).read_text())["grant"]
    if not grant:
        sys.exit("no grant: the call was not allowed (or the agent was not proven)")
    try:
        claims = verify_grant(grant, tool, json.loads(args))
    except (jwt.PyJWTError, PermissionError) as exc:
        sys.exit(f"refused: {exc}")
    print(f"grant ok: {claims['sub']} may call {claims['aud']} until {claims['exp']} "
          f"(rules {', '.join(claims['agp']['rules'])})")

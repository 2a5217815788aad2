"""Verify a credmesh JWT with PyJWT, a library nobody on the project wrote.

usage: verify_jwt.py JWKS_URL TOKEN (access|vc) [AUDIENCE]

Fetches the JWKS over HTTP, picks the key by `kid`, verifies the EdDSA signature and
the standard claims, and prints the header and claims as JSON. Exits non-zero when
verification fails.
"""

import json
import sys

import jwt


def main() -> int:
    jwks_url, token, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    audience = sys.argv[4] if len(sys.argv) > 4 else None
    client = jwt.PyJWKClient(jwks_url, cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    if kind == "access":
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            audience=audience,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    elif kind == "vc":
        if header.get("typ") != "vc+jwt":
            print(f"unexpected typ {header.get('typ')!r}", file=sys.stderr)
            return 1
        claims = jwt.decode(token, key.key, algorithms=["EdDSA"], options={"verify_aud": False})
        if "https://www.w3.org/ns/credentials/v2" not in claims.get("@context", []):
            print("not a VC 2.0 payload", file=sys.stderr)
            return 1
    else:
        print(f"unknown kind {kind}", file=sys.stderr)
        return 2
    print(json.dumps({"header": header, "claims": claims}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

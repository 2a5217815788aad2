"""Verifies a credmesh presentation's SD-JWT with the IETF reference implementation
(the `sd-jwt` package, pinned in tools/requirements.txt), a library nobody here wrote.

Usage: check_sd_jwt.py <sd-jwt> <issuer public key, base64url> <now, unix seconds>
Prints the verified payload with the disclosed claims as JSON; exits non-zero when the
signature, a disclosure or the validity window does not check out.
"""

import json
import sys

from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier


def main() -> None:
    token, public_key, now = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = JWK(kty="OKP", crv="Ed25519", x=public_key)

    def issuer_key(issuer, header):
        if header.get("alg") != "EdDSA" or header.get("typ") != "dc+sd-jwt":
            raise ValueError(f"unexpected header {header}")
        return key

    payload = SDJWTVerifier(token, issuer_key).get_verified_payload()
    # The library leaves the time window to its caller.
    if not payload["nbf"] - 30 <= now <= payload["exp"] + 30:
        raise SystemExit(f"outside the validity window: {payload['nbf']}..{payload['exp']}")
    print(json.dumps(payload, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()

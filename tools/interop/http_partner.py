"""A partner's HTTP client in another language: no gRPC, no credmesh code.

With PyJWT it signs an RFC 7523 client assertion with the partner's Ed25519 key
(PKCS#8 PEM, as `credmesh keygen` writes it), trades it for an access token at the
OAuth 2.0 token endpoint (POST /v1/token, client credentials grant), and verifies a
credential at POST /v1/verify with that token. It also sends the same assertion a
second time, which must be refused as a replay.

Prints JSON: the token answer (without the token), the replay's status and error,
and the verify answer. Exits non-zero when a step does not answer as a partner
would expect.

Usage: http_partner.py BASE_URL CLIENT_ID KEY_PEM CREDENTIAL_TEXT
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def post(url, body, headers):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, json.load(refused)


def main() -> int:
    base, client_id, key_file, credential = sys.argv[1:5]
    with open(key_file, "rb") as f:
        key = f.read()
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            # What OAuth client libraries put in aud by default: the token endpoint's URL.
            "aud": f"{base}/v1/token",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 120,
        },
        key,
        algorithm="EdDSA",
    )
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": "verify",
        }
    ).encode()
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, token = post(f"{base}/v1/token", form, form_headers)
    if status != 200:
        print(f"token endpoint answered {status}: {token}", file=sys.stderr)
        return 1
    replay_status, _, replay = post(f"{base}/v1/token", form, form_headers)

    status, _, answer = post(
        f"{base}/v1/verify",
        json.dumps({"credential": credential}).encode(),
        {
            "Content-Type": "application/json",
            "Authorization": f"{token['token_type']} {token['access_token']}",
        },
    )
    if status != 200:
        print(f"verify answered {status}: {answer}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "token": {
                    "token_type": token["token_type"],
                    "expires_in": token["expires_in"],
                    "scope": token["scope"],
                    "cache_control": headers.get("Cache-Control"),
                },
                "replay": {"status": replay_status, "error": replay.get("error")},
                "answer": answer,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

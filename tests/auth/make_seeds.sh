#!/bin/sh
# make_seeds.sh - writes the seed corpora for fuzz_jwt and fuzz_jwks (public keys only) into corpus/.
# Needs openssl and python3. Run from anywhere; the committed corpus came from this script.
set -eu
cd "$(dirname "$0")/corpus"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl genrsa -out "$tmp/rsa.pem" 2048 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ec.pem"
mod=$(openssl rsa -in "$tmp/rsa.pem" -noout -modulus | cut -d= -f2)
openssl ec -in "$tmp/ec.pem" -pubout -outform DER -out "$tmp/ec.der" 2>/dev/null
python3 - "$mod" "$tmp/ec.der" <<'PY'
import base64, json, sys
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
n = bytes.fromhex(sys.argv[1]); pub = open(sys.argv[2], "rb").read()[-64:]
rsa = {"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": b(n), "e": "AQAB"}
ec = {"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b(pub[:32]), "y": b(pub[32:])}
seeds = {
    "jwks/cognito": {"keys": [rsa, dict(rsa, kid="rsa2")]},
    "jwks/mixed": {"keys": [rsa, ec, {"kty": "oct", "k": "AAAA"}, dict(rsa, kid="e", use="enc")]},
    "jwks/ec": {"keys": [ec]},
}
for name, doc in seeds.items():
    open(name, "w").write(json.dumps(doc))
j = lambda o: json.dumps(o, separators=(",", ":"))
claims = {"exp": 1800003600, "nbf": 1799999000, "iss": "iss1", "aud": ["x", "app1"], "sub": "u-1"}
signed = {
    "jwt/hs": (4, {"alg": "HS256", "typ": "JWT"}, claims),
    "jwt/es": (6, {"alg": "ES256", "kid": "ec1"}, dict({k: v for k, v in claims.items() if k != "aud"}, client_id="app1")),
    "jwt/rs": (7, {"alg": "RS256", "kid": "rsa1"}, claims),
}
for name, (mode, h, c) in signed.items():
    open(name, "wb").write(bytes([mode]) + j(h).encode() + b"\n" + j(c).encode())
tok = b(j({"alg": "HS256"}).encode()) + "." + b(j(claims).encode()) + "." + "A" * 43
open("jwt/raw", "wb").write(b"\x00" + tok.encode())
open("jwt/none", "wb").write(b"\x00" + (b(b'{"alg":"none"}') + "." + b(j(claims).encode()) + ".").encode())
PY

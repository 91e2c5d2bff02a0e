#!/usr/bin/env python3
"""Credentials made independently of Warden's code, for the end-to-end tests.

  sign.py keys DIR                 RSA, P-256, Ed25519 and HS256 keys: DIR/<kid>.pem (private),
                                   DIR/hs1.secret, and the public DIR/jwks.json
  sign.py jwt DIR KID ALG CLAIMS   a JWT signed by PyJWT with key KID (CLAIMS is JSON)
  sign.py jwts DIR KID ALG CLAIMS N FILE
                                   N tokens, each with its own jti, one per line into FILE
  sign.py confused DIR KID CLAIMS  an HS256 token whose HMAC key is KID's RSA public key (PEM):
                                   the algorithm-confusion forgery, built by hand
  sign.py github SECRET FILE       x-hub-signature-256 value for the file's bytes
  sign.py stripe SECRET FILE T     stripe-signature value for the file's bytes at Unix time T

Only PyJWT, `cryptography` and the standard library's hmac are used.
"""
import hashlib
import hmac
import json
import os
import secrets
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def keys(d):
    os.makedirs(d, exist_ok=True)
    private = {
        "rsa1": (rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm, "RS256"),
        "ec1": (ec.generate_private_key(ec.SECP256R1()), ECAlgorithm, "ES256"),
        "ed1": (ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm, "EdDSA"),
    }
    jwks = []
    for kid, (key, algo, alg) in private.items():
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with open(os.path.join(d, kid + ".pem"), "wb") as f:
            f.write(pem)
        jwk = json.loads(algo.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        jwks.append(jwk)
    hs = secrets.token_bytes(32)
    with open(os.path.join(d, "hs1.secret"), "wb") as f:
        f.write(hs)
    k = jwt.utils.base64url_encode(hs).decode()
    jwks.append({"kty": "oct", "kid": "hs1", "alg": "HS256", "k": k})
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": jwks}, f)


def signing_key(d, kid, alg):
    path = os.path.join(d, kid + (".secret" if alg.startswith("HS") else ".pem"))
    with open(path, "rb") as f:
        key = f.read()
    if not alg.startswith("HS"):
        # Parsed once: PyJWT would parse the PEM again for every token.
        key = serialization.load_pem_private_key(key, password=None)
    return key


def token(d, kid, alg, claims):
    print(jwt.encode(json.loads(claims), signing_key(d, kid, alg), algorithm=alg, headers={"kid": kid}))


def tokens(d, kid, alg, claims, n, out):
    key, claims = signing_key(d, kid, alg), json.loads(claims)
    with open(out, "w") as f:
        for i in range(n):
            claims["jti"] = str(i)
            f.write(jwt.encode(claims, key, algorithm=alg, headers={"kid": kid}) + "\n")


def confused(d, kid, claims):
    with open(os.path.join(d, kid + ".pem"), "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b64 = lambda b: jwt.utils.base64url_encode(b).decode()
    signing_input = b64(json.dumps({"alg": "HS256", "kid": kid}).encode()) + "." + b64(claims.encode())
    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    print(signing_input + "." + b64(sig))


def mac(secret, payload):
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def main(argv):
    cmd = argv[1]
    if cmd == "keys":
        keys(argv[2])
    elif cmd == "jwt":
        token(argv[2], argv[3], argv[4], argv[5])
    elif cmd == "jwts":
        tokens(argv[2], argv[3], argv[4], argv[5], int(argv[6]), argv[7])
    elif cmd == "confused":
        confused(argv[2], argv[3], argv[4])
    elif cmd == "github":
        body = open(argv[3], "rb").read()
        print("sha256=" + mac(argv[2], body))
    elif cmd == "stripe":
        body = open(argv[3], "rb").read()
        t = argv[4]
        print("t=%s,v1=%s" % (t, mac(argv[2], t.encode() + b"." + body)))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)

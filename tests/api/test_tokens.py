"""Bearer JWTs (issue 20): verified against a JWKS file made here from a locally generated RSA key pair; the
role and collections come from claims; an unknown, expired, wrongly signed or mis-addressed token is a 401 naming
the reason. The real app over the hash-embedded seeds, served by FastAPI's TestClient."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from tests.api.test_principals import SECRET

ISS, AUD = "https://idp.example/realms/office", "policy-rag"


def _pair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"idp": _pair(), "intruder": _pair()}


@pytest.fixture
def client(make_app: Callable[..., TestClient], keys: dict[str, Any], tmp_path: Path) -> TestClient:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["idp"].public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return make_app(jwt_jwks_file=str(jwks), jwt_issuer=ISS, jwt_audience=AUD, jwt_role_claim="rag_role",
                       jwt_collections_claim="rag_collections")


def token(keys: dict[str, Any], signer: str = "idp", kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "rag_role": "reader",
            "rag_collections": ["A"], **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, keys[signer], algorithm="RS256",
                      headers={"kid": kid})


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def test_claims_give_role_and_collections(client: TestClient, keys: dict[str, Any]) -> None:
    admin = token(keys, sub="root", rag_role="admin", rag_collections="*")
    assert client.post("/v1/documents", headers=bearer(admin), data={"collection": "B"},
                       files={"files": ("b.txt", f"乙库：{SECRET}。".encode(), "text/plain")}).status_code == 201
    me = client.get("/v1/me", headers=bearer(token(keys))).json()
    assert me == {"name": "jwt:alice", "role": "reader", "collections": ["A"], "authenticated": True,
                  "source": "jwt", "can_write": False}
    r = client.post("/v1/search", headers=bearer(token(keys)), json={"query": SECRET, "mode": "bm25"})
    assert r.status_code == 200 and SECRET not in r.text
    r = client.post("/v1/search", headers=bearer(admin), json={"query": SECRET, "mode": "bm25"})
    assert SECRET in r.text
    editor = token(keys, sub="bob", rag_role="editor", rag_collections="A, C")
    assert client.post("/v1/documents", headers=bearer(editor), data={"collection": "C"},
                       files={"files": ("c.txt", "丙库。".encode(), "text/plain")}).status_code == 201
    assert client.post("/v1/documents", headers=bearer(editor), data={"collection": "B"},
                       files={"files": ("c.txt", "丙库。".encode(), "text/plain")}).status_code == 403
    assert client.get("/v1/audit", headers=bearer(admin)).json()["entries"][0]["principal"] == "jwt:bob"


@pytest.mark.parametrize("claims, reason", [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"signer": "intruder"}, "signature"),
    ({"kid": "k9"}, "unknown signing key"),
    ({"aud": "another-app"}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"exp": None}, "exp"),
    ({"rag_role": "owner"}, "rag_role"),
    ({"rag_collections": 7}, "rag_collections"),
    ({"sub": None}, "subject"),
])
def test_bad_tokens_are_401_with_the_reason(client: TestClient, keys: dict[str, Any], claims: dict[str, Any],
                                            reason: str) -> None:
    kw = dict(claims)
    t = token(keys, signer=kw.pop("signer", "idp"), kid=kw.pop("kid", "k1"), **kw)
    r = client.post("/v1/search", headers=bearer(t), json={"query": "科技"})
    assert r.status_code == 401 and reason in r.json()["message"], r.text
    assert "bearer" in r.headers["www-authenticate"].lower()


def test_a_garbled_token_is_401_and_a_non_token_is_a_bad_key(client: TestClient, keys: dict[str, Any]) -> None:
    t = token(keys)
    r = client.post("/v1/search", headers=bearer(t[:-5] + "AAAAA"), json={"query": "科技"})
    assert r.status_code == 401
    r = client.post("/v1/search", headers=bearer("not-a-token"), json={"query": "科技"})
    assert r.status_code == 403 and "not valid" in r.json()["message"]

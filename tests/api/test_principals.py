"""Principals (issue 20): named keys with roles and collections from settings or a keys file (hashes only,
re-read when it changes), the key CLI, role checks on writes, and the collection scope on reads.

The app is the real one over the seed documents indexed with the hash embedder (fast, no model), served by
FastAPI's TestClient (``make_app``, tests/api/conftest.py); the route-by-route isolation walk on the real model
is tests/api/test_isolation.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.keys import add as add_key
from api.keys import main as keys_cli
from api.main import create_app
from api.principals import hash_key, read_keys_file, verify
from rag.core.config import Settings
from rag.core.errors import ConfigError

BASE = "http://127.0.0.1:8000"
SECRET = "紫藤密档编号七七四九"


def upload(c: TestClient, key: str, name: str, text: str, collection: str) -> Any:
    return c.post("/v1/documents", headers={"X-API-Key": key}, data={"collection": collection},
                  files={"files": (name, text.encode(), "text/plain")})


def test_hashes_verify_and_never_hold_the_key() -> None:
    h = hash_key("rk_00000000_secret-secret-secret-secret", iterations=1000)
    assert h.startswith("pbkdf2_sha256$1000$") and "secret" not in h
    assert verify("rk_00000000_secret-secret-secret-secret", h) and not verify("other", h)
    import hashlib
    assert verify("k1", "sha256:" + hashlib.sha256(b"k1").hexdigest()) and not verify("k2", "sha256:00")


def test_keys_file_that_does_not_parse_names_the_line(tmp_path: Path, keyed_index: Path) -> None:
    bad = tmp_path / "keys.toml"
    bad.write_text('[[keys]]\nname = "a"\nrole = "reader"\ncollections = ["A"\nhash = "sha256:00"\n')
    with pytest.raises(ConfigError, match="line 5"):
        read_keys_file(bad)
    bad_json = tmp_path / "keys.json"
    bad_json.write_text('{"keys": [\n  {"name": "a",\n   "role": "reader" "hash": "x"}]}')
    with pytest.raises(ConfigError, match="line 3"):
        read_keys_file(bad_json)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"keys": [{"name": "a", "role": "reader", "hash": "the-key-itself"}]}))
    with pytest.raises(ConfigError, match="never the key"):
        read_keys_file(plain)
    # the server refuses to start on a file that does not parse
    app = create_app(Settings(index_dir=keyed_index, embedder="hash", reader="rules", llm_base_url="",
                              keys_file=str(bad)))
    with pytest.raises(ConfigError, match="line 5"), TestClient(app, base_url=BASE):
        pass


def test_cli_adds_a_key_printed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "keys.json"
    assert keys_cli(["add", "hr-reader", "--role", "reader", "--collections", "hr,finance", "--file", str(f)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("rk_") and key not in f.read_text()
    (entry,) = read_keys_file(f)
    assert entry.principal.role == "reader" and entry.principal.collections == {"hr", "finance"}
    assert verify(key, entry.hash)
    assert keys_cli(["add", "hr-reader", "--file", str(f)]) == 1  # names are unique
    assert keys_cli(["list", "--file", str(f)]) == 0 and "hr-reader\treader\tfinance,hr" in capsys.readouterr().out


def test_roles_and_collections_on_writes_and_reads(make_app: Callable[..., TestClient], tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    admin, editor, reader = (add_key(keys, n, r, c) for n, r, c in
                             [("boss", "admin", ["*"]), ("ed-a", "editor", ["A"]), ("rd-a", "reader", ["A"])])
    c = make_app(keys_file=str(keys), api_keys=["legacy-key"])
    assert upload(c, admin, "secret-b.txt", f"乙库文件。{SECRET}是内部编号。", "B").status_code == 201
    assert upload(c, editor, "doc-a.txt", "甲库文件。公开的通知内容。", "A").status_code == 201
    assert upload(c, editor, "doc-b.txt", "写到乙库。", "B").status_code == 403  # editor outside its collections
    assert upload(c, reader, "doc-r.txt", "读者不能写。", "A").status_code == 403
    # replacing a document of another collection through a fixed doc_id: not visible -> 404
    r = c.post("/v1/documents", headers={"X-API-Key": editor}, data={"collection": "A", "doc_id": "secret-b.txt"},
               files={"files": ("secret-b.txt", b"overwrite", "text/plain")})
    assert r.status_code == 404, r.text
    assert c.delete("/v1/documents/secret-b.txt", headers={"X-API-Key": editor}).status_code == 404
    for url in ("/v1/documents", "/v1/documents?async=true"):  # the same file name, answered or as a job
        r = c.post(url, headers={"X-API-Key": editor}, data={"collection": "A"},
                   files={"files": ("secret-b.txt", b"overwrite", "text/plain")})
        assert r.status_code == 404, r.text
    # reads: the scoped reader never sees collection B
    for key, sees in ((reader, False), (editor, False), (admin, True), ("legacy-key", True)):
        h = {"X-API-Key": key}
        r = c.post("/v1/search", json={"query": SECRET, "mode": "bm25"}, headers=h)
        assert r.status_code == 200 and (SECRET in r.text) == sees, (key[:8], r.text[:200])
        docs = c.get("/v1/documents", headers=h).json()["documents"]
        assert ("secret-b.txt" in {d["doc_id"] for d in docs}) == sees
        assert c.get("/v1/documents/secret-b.txt", headers=h).status_code == (200 if sees else 404)
        assert ("B" in c.get("/v1/collections", headers=h).json()["collections"]) == sees
    r = c.post("/v1/search", json={"query": SECRET, "collection": "B"}, headers={"X-API-Key": reader})
    assert r.status_code == 404 and "unknown collection" in r.json()["message"]
    # without a key, once some key is scoped, reads see no collection (RAG_PUBLIC_COLLECTIONS opens some)
    r = c.post("/v1/search", json={"query": SECRET, "mode": "bm25"})
    assert r.status_code == 200 and r.json()["results"] == []
    assert c.post("/v1/search", json={"query": SECRET}, headers={"X-API-Key": "nope"}).status_code == 403
    assert c.get("/v1/report", headers={"X-API-Key": reader}).status_code == 403
    assert c.get("/v1/report", headers={"X-API-Key": admin}).status_code == 200


def test_keys_file_is_reread_when_it_changes(make_app: Callable[..., TestClient], tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    first = add_key(keys, "one", "reader", ["*"])
    c = make_app(keys_file=str(keys), read_keys_required=True)
    assert c.get("/v1/documents", headers={"X-API-Key": first}).status_code == 200
    second = add_key(keys, "two", "reader", ["*"])
    st = keys.stat()
    os.utime(keys, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a coarse-mtime filesystem
    assert c.get("/v1/documents", headers={"X-API-Key": second}).status_code == 200
    # rotation: the first key removed from the file stops working, no restart
    data = json.loads(keys.read_text())
    keys.write_text(json.dumps({"keys": [k for k in data["keys"] if k["name"] != "one"]}))
    os.utime(keys, (time.time() + 4, time.time() + 4))
    assert c.get("/v1/documents", headers={"X-API-Key": first}).status_code == 403
    # a bad edit keeps the keys of before (logged), the server stays up
    keys.write_text("{not json")
    os.utime(keys, (time.time() + 6, time.time() + 6))
    assert c.get("/v1/documents", headers={"X-API-Key": second}).status_code == 200
    assert c.get("/v1/documents").status_code == 401


def test_principals_from_settings(make_app: Callable[..., TestClient]) -> None:
    import hashlib

    entry = {"name": "ops", "role": "admin", "collections": ["*"],
             "hash": "sha256:" + hashlib.sha256(b"ops-key-1234567890").hexdigest()}
    c = make_app(principals=[entry])
    assert upload(c, "ops-key-1234567890", "ops.txt", "运维上传。", "ops").status_code == 201
    assert upload(c, "wrong", "ops.txt", "运维上传。", "ops").status_code == 403

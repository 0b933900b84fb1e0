"""The bad-input list of tests/api/test_reliability.py, with the encrypted PDF and the PDF bomb of
tests/api/test_upload_offloop.py, with keys configured (issue 20, item 6), on a real uvicorn server on
127.0.0.1: a keys file (made in a temporary folder: an admin, an editor and a reader of collection ``default``,
where the list writes) and RAG_READ_KEYS_REQUIRED=true. Hash embedder (no answer in the list depends on the
model), RAG_MAX_UPLOAD_MB=1 as on the list's own server.

1. With the editor's key every case gets the answer it gets without keys configured: the same status and the
   same word in the message.
2. Who comes first, authentication or validation, without a key, with an invalid key and with the reader's key.
   The rule (docs/isolation.md): what is refused before a route is chosen or its body read is answered the same
   with or without a key (no such path 404, wrong method 405, a body over the limit 413, a JSON body that does
   not parse 400/422); everything else is authenticated first (401 without a key, 403 with an invalid one or
   without the role), then validated (422), then checked against the key's collections (404).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.test_reliability import BAD, HASH, UPLOAD_MB, Bad, Server, cli_ingest, launch, upload
from tests.conftest import SEEDS
from tests.ingest.test_hostile_files import encrypted, make_pdf, text_page

pytestmark = pytest.mark.integration

# refused before authentication: the request never reaches a route's dependencies
BEFORE_AUTH = {
    "query-100k-chars": "413: body over the limit (counted by the body-limit middleware)",
    "huge-json-body": "413: body over the limit",
    "upload-oversized": "413: body over the limit",
    "invalid-utf8-body": "400: the JSON body does not decode",
    "malformed-json": "422: the JSON body does not parse",
    "deeply-nested-json": "400: the JSON body does not parse (nesting)",
    "get-on-post-route": "405: no such method on the route",
    "path-traversal-doc-id": "404: no such path (%2F makes it /etc/passwd, outside /v1/documents/{doc_id})",
}
# the hostile files of tests/api/test_upload_offloop.py, as the list's cases
FILES = [
    Bad("upload-encrypted-pdf", "POST", "/v1/documents", 422, word="decrypted copy",
        build=lambda: upload("locked.pdf", encrypted(make_pdf([text_page(0)]), "secret", "AES-256"))),
    Bad("upload-pdf-bomb", "POST", "/v1/documents", 422, word="limit",
        build=lambda: upload("bomb.pdf", make_pdf([b"BT (Hi) Tj ET " + b" " * (100 << 20)], compress=True))),
]
WRITE_ROUTES = ("/v1/documents",)
CALLERS = ("editor", "no key", "invalid key", "reader")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    from api.keys import add

    tmp = tmp_path_factory.mktemp("keyed_bad_input")
    r = cli_ingest(SEEDS, tmp / "index")
    assert r.returncode == 0, r.stderr
    keys = {name: add(tmp / "keys.toml", name, role, cols) for name, role, cols in
            [("admin", "admin", ["*"]), ("editor", "editor", ["default"]), ("reader", "reader", ["default"])]}
    srv = launch(tmp / "index", tmp / "server.log", {**HASH, "RAG_MAX_UPLOAD_MB": str(UPLOAD_MB),
                                                      "RAG_KEYS_FILE": str(tmp / "keys.toml"),
                                                      "RAG_READ_KEYS_REQUIRED": "true",
                                                      "RAG_JOBS_DIR": str(tmp / "jobs")})
    try:
        yield srv, keys
    finally:
        srv.stop()


def expected(case: Bad, caller: str) -> tuple[int, str]:
    """(status, word in the message) the rule above gives ``caller``."""
    if caller in ("as listed", "editor") or case.id in BEFORE_AUTH:
        return case.status, case.word  # the same answer as without keys
    if caller == "no key":
        return 401, "api key"
    if caller == "invalid key":
        return 403, "not valid"
    writes = case.path.startswith(WRITE_ROUTES) and case.method in ("POST", "PUT", "DELETE")
    return (403, "writing needs an editor") if writes else (case.status, case.word)


def send(base: str, case: Bad, headers: dict[str, str], built: dict[str, dict[str, Any]]) -> httpx.Response:
    kw: dict[str, Any] = {"headers": {**headers, **case.headers}, "timeout": 120}
    if case.json is not None:
        kw["json"] = case.json
    if case.content is not None:
        kw["content"] = case.content
    if case.build is not None:
        kw.update(built.setdefault(case.id, case.build()))  # the zip bomb is built once
    return httpx.request(case.method, base + case.path, **kw)


def test_bad_input_with_keys_gets_the_same_4xx_and_auth_comes_first(
        keyed_server: tuple[Server, dict[str, str]]) -> None:
    srv, keys = keyed_server
    headers = {"editor": {"X-API-Key": keys["editor"]}, "no key": {}, "as listed": {},
               "invalid key": {"X-API-Key": "rk_0badc0de_" + "x" * 43}, "reader": {"X-API-Key": keys["reader"]}}
    built: dict[str, dict[str, Any]] = {}
    rows, failures = [], []
    for case in [*BAD, *FILES]:
        cells = []
        for caller in CALLERS if case.server == "write" else ("as listed",):  # the keys cases carry their own
            want, word = expected(case, caller)
            r = send(srv.base, case, headers[caller], built)
            message = r.json().get("message", "") if r.headers.get("content-type", "").startswith(
                "application/json") else ""
            ok = r.status_code == want and word.lower() in message.lower() and r.headers.get("x-request-id")
            if not ok:
                failures.append(f"{case.id} / {caller}: {r.status_code} {message[:160]!r}, expected {want} "
                                f"with {word!r}")
            cells.append(str(r.status_code) + ("" if ok else " (!)"))
        if case.server == "keys":  # sent with the case's own header (or none), not as one of the callers
            cells = [f"{cells[0]} (the case's own header)", "", "", ""]
        rows.append(f"| {case.id} | {case.method} {case.path[:40]} | {case.status} | " + " | ".join(cells) + " |")
        assert srv.proc.poll() is None, "the server died:\n" + srv.output()[-3000:]
    print("\n| case | request | expected (keys off) | " + " | ".join(CALLERS) + " |\n|---|---|---|---|---|---|---|\n"
          + "\n".join(rows))
    assert not failures, "\n".join(failures)
    assert "Traceback" not in srv.output()


def test_the_rule_names_only_cases_of_the_list() -> None:
    ids = {c.id for c in BAD}
    assert set(BEFORE_AUTH) <= ids, set(BEFORE_AUTH) - ids
    assert sum(c.server == "write" for c in BAD) >= 40


def test_an_upload_outside_the_keys_collections_is_refused_before_its_files_are_read(
        keyed_server: tuple[Server, dict[str, str]]) -> None:
    """Inside a route: its fields are validated first (422), then the collection is checked (403), then the files
    are read (a corrupt file's 422 only reaches a caller who may write there); nothing refused is stored."""
    srv, keys = keyed_server
    reader, editor = {"X-API-Key": keys["reader"]}, {"X-API-Key": keys["editor"]}
    good = [("files", ("fine.txt", "正文内容。".encode(), "text/plain"))]
    corrupt = [("files", ("broken.pdf", b"%PDF-1.7\n" + b"\x9c\x01" * 500, "application/pdf"))]
    cases = [(reader, good, {}, 403, "reader"), (editor, good, {"collection": "B"}, 403, "may not write"),
             (editor, corrupt, {"collection": "B"}, 403, "may not write"),
             (editor, good, {"collection": "bad\x01name"}, 422, "collection"),
             (editor, corrupt, {}, 422, "pdf")]
    for headers, files, data, status, word in cases:
        r = httpx.post(srv.base + "/v1/documents", headers=headers, files=files, data=data, timeout=60)
        assert r.status_code == status and word in r.json()["message"].lower(), (data, r.status_code, r.text)
    docs = httpx.get(srv.base + "/v1/documents", headers={"X-API-Key": keys["admin"]}, timeout=60).json()
    assert not {"fine.txt", "broken.pdf"} & {d["doc_id"] for d in docs["documents"]}

"""kill -9 mid-upload with synchronous uploads, and keys for every part of scripts/kill9_check.py (issues 20, 21).

* ``sync``: DOCS files one by one as ``POST /v1/documents`` (201 each) to a server on loopback, killed with
  SIGKILL at fractions of a reference run. After the kill the index must load (checksums verified) and hold the
  old documents plus every acknowledged (201) upload, and nothing else but the one in flight; after a restart
  the acknowledged ones are listed and the last one is readable.
* ``--keys``: a keys file (an admin, an editor of collection ``uploads``, a reader of it) in the run's temporary
  folder, never kept; RAG_READ_KEYS_REQUIRED=true. Uploads and job polls send the editor's key (the files go to
  ``uploads``), the document lists the admin's. An upload without a key must be a 401 and one with the reader's
  key a 403, checked once per part.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rag.index import store
from tests.conftest import start_server, stop_server


@dataclass
class Keys:
    """Headers of the writer (uploads, job polls), the admin (document lists) and a reader; empty: no keys."""

    writer: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    reader: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)  # the upload's collection

    @classmethod
    def make(cls, keys_file: Path) -> Keys:
        from api.keys import add

        made = {name: {"X-API-Key": add(keys_file, name, role, cols)} for name, role, cols in
                [("kill9-admin", "admin", ["*"]), ("kill9-editor", "editor", ["uploads"]),
                 ("kill9-reader", "reader", ["uploads"])]}
        return cls(made["kill9-editor"], made["kill9-admin"], made["kill9-reader"], {"collection": "uploads"})


def listed(url: str, keys: Keys) -> set[str]:
    r = httpx.get(url + "/v1/documents", headers=keys.admin, timeout=60)
    r.raise_for_status()
    return {d["doc_id"] for d in r.json()["documents"]}


def keys_enforced(url: str, keys: Keys) -> dict[str, int]:
    """An upload without a key and one with the reader's key: 401 and 403 (nothing sent without keys)."""
    if not keys.writer:
        return {}
    one = [("files", ("probe.txt", "探针文件。".encode(), "text/plain"))]
    codes = {"no key": httpx.post(url + "/v1/documents", files=one, data=keys.form, timeout=60).status_code,
             "reader key": httpx.post(url + "/v1/documents", files=one, data=keys.form, headers=keys.reader,
                                      timeout=60).status_code}
    if codes != {"no key": 401, "reader key": 403}:
        raise AssertionError(f"keys not enforced: {codes}")
    return codes


def uploads_until(url: str, files: list[Path], keys: Keys, acked: list[str], in_flight: list[str],
                  failed: list[str]) -> None:
    """Synchronous uploads one by one until the server dies (or all are in): ``acked`` the 201s, ``failed``
    an upload refused (which stops the run)."""
    with httpx.Client(timeout=120, headers=keys.writer) as c:
        for p in files:
            in_flight[:] = [p.name]
            try:
                r = c.post(url + "/v1/documents", data=keys.form,
                           files=[("files", (p.name, p.read_bytes(), "text/plain"))])
            except httpx.HTTPError:
                return  # the server was killed: this one may or may not be in
            if r.status_code != 201:
                failed.append(f"upload {p.name}: {r.status_code} {r.text[:200]}")
                return
            acked.append(p.name)
            in_flight.clear()


def sync_part(base: Path, folder: Path, work: Path, old: set[str], env: dict[str, str], keys: Keys,
              n: int = 60) -> dict[str, Any]:
    files = sorted(folder.iterdir())[:n]
    ref = work / "sync-ref"
    shutil.copytree(base, ref, symlinks=True)
    proc, url = start_server(ref, env, timeout=600)
    try:
        auth = keys_enforced(url, keys)
        t0 = time.monotonic()
        done: list[str] = []
        refused: list[str] = []
        uploads_until(url, files, keys, done, [], refused)
        full = time.monotonic() - t0
    finally:
        stop_server(proc)
    if len(done) != len(files):
        raise RuntimeError(f"reference run: {len(done)} of {len(files)} uploads {refused[:1]}")
    trials, each = [], full / len(files)
    # kill once ``at`` of the uploads are acknowledged, ``into`` of a mean upload later: inside the next one
    for i, (at, into) in enumerate([(0.1, 0.25), (0.3, 0.5), (0.5, 0.75), (0.7, 0.95), (0.9, 0.5)]):
        index = work / f"sync-{i}"
        shutil.copytree(base, index, symlinks=True)
        proc, url = start_server(index, env, timeout=600)
        acked: list[str] = []
        in_flight: list[str] = []
        failed: list[str] = []
        client = threading.Thread(target=uploads_until, args=(url, files, keys, acked, in_flight, failed))
        client.start()
        try:
            deadline = time.monotonic() + full * 3 + 60
            while len(acked) < int(at * len(files)) and client.is_alive() and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(each * into)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            client.join(timeout=180)
        finally:
            stop_server(proc)
        if failed:
            raise RuntimeError(f"kill at {at}: {failed[0]}")
        idx = store.load(index)  # checksums verified: never partial
        ids = set(idx.documents)
        if not old | set(acked) <= ids <= old | set(acked) | set(in_flight):
            raise AssertionError(f"kill at {at}: {len(acked)} acknowledged, index holds {len(ids - old)} new")
        if not idx.size == idx.manifest["n_chunks"] == idx.dense.ntotal:
            raise AssertionError("chunk counts disagree")
        trial: dict[str, Any] = {"at": at, "into_upload": into, "acknowledged": len(acked), "in_flight": in_flight[:1],
                                 "index_after_kill": f"old+{len(ids - old)}",
                                 "in_flight_landed": bool(in_flight) and in_flight[0] in ids}
        proc, url = start_server(index, env, timeout=600)
        try:
            docs = listed(url, keys)
            last = httpx.get(f"{url}/v1/documents/{acked[-1]}", headers=keys.writer, timeout=60) if acked else None
            trial["after_restart"] = "acknowledged all listed" if set(acked) <= docs else "LOST"
            trial["last_acknowledged_readable"] = last is None or last.status_code == 200
        finally:
            stop_server(proc)
        trials.append(trial)
    lost = sum(t["after_restart"] != "acknowledged all listed" or not t["last_acknowledged_readable"]
               for t in trials)
    return {"uploads": len(files), "reference_s": round(full, 1), "trials": trials, "acknowledged_lost": lost,
            "auth": auth}

"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary directory, on a free
loopback port, trust authentication, stopped and deleted afterwards. Debian: ``apt-get install postgresql``
(the binaries live in /usr/lib/postgresql/<version>/bin). ``postgres_url`` skips the test, saying why, when the
binaries or psycopg are missing; as root the server runs as the ``postgres`` user (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port


def pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's versioned folders, newest first)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl") and os.path.exists(os.path.realpath(found)):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def skip_reason() -> str:
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed: pip install -e '.[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server (initdb refuses root)"
    return ""


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a server, yield its URL (database ``postgres``, user ``rag``), stop it and delete its files."""
    why = skip_reason()
    if why:
        pytest.skip(why)
    bindir = pg_bin()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    kw: dict[str, Any] = {}
    if os.geteuid() == 0:  # initdb refuses root: the server's files and processes belong to 'postgres'
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    data, port = root / "data", free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120, cwd=root, **kw)
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "rag", "--auth=trust", "-E", "UTF8",
                        "--locale=C"], **run)  # type: ignore[call-overload]
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       **run)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as e:
        log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {e.stderr}\n{log[-2000:]}") from e
    try:
        yield f"postgresql://rag@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, cwd=root, **kw)
        shutil.rmtree(root, ignore_errors=True)

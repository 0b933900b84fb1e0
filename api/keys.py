"""``python -m api.keys``: add a named key to a keys file (JSON or TOML) and print the key once; list them.

    python -m api.keys add finance-reader --role reader --collections finance,hr --file keys.toml
    python -m api.keys list --file keys.toml

The file keeps only a PBKDF2 hash and the key's id (``rk_<kid>_...``); the server picks the change up
without a restart (RAG_KEYS_FILE). Lose the key and you add a new one: it cannot be read back.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from api.principals import ROLES, parse_entry, read_keys_file
from rag.core.errors import ConfigError


def new_key() -> tuple[str, str]:
    kid = secrets.token_hex(4)
    return kid, f"rk_{kid}_{secrets.token_urlsafe(32)}"


def _toml_entry(e: dict[str, Any]) -> str:
    cols = ", ".join(json.dumps(c, ensure_ascii=False) for c in e["collections"])
    return (f"\n[[keys]]\nname = {json.dumps(e['name'])}\nrole = {json.dumps(e['role'])}\n"
            f"collections = [{cols}]\nkid = {json.dumps(e['kid'])}\nhash = {json.dumps(e['hash'])}\n")


def add(path: Path, name: str, role: str, collections: list[str]) -> str:
    """Append the entry (written to a temporary file, then renamed: the server never reads half a file)."""
    from api.principals import hash_key

    existing = read_keys_file(path) if path.exists() else []
    if any(e.principal.name == name for e in existing):
        raise ConfigError(f"{path} already has a key named {name!r}: pick another name or edit the file")
    kid, key = new_key()
    entry = {"name": name, "role": role, "collections": collections, "kid": kid, "hash": hash_key(key)}
    parse_entry(entry, "new key")  # the same checks the server makes
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"keys": []}
        data["keys"].append(entry)
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    else:
        text = (path.read_text(encoding="utf-8") if path.exists() else
                "# API keys (issue 20): python -m api.keys add NAME --role ROLE --collections A,B\n")
        text += _toml_entry(entry)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m api.keys", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="add a key and print it once")
    a.add_argument("name")
    a.add_argument("--role", choices=ROLES, default="reader")
    a.add_argument("--collections", default="*", help="comma-separated, * = all (default)")
    a.add_argument("--file", type=Path, default=Path(os.environ.get("RAG_KEYS_FILE") or "keys.toml"))
    ls = sub.add_parser("list", help="names, roles and collections (never keys)")
    ls.add_argument("--file", type=Path, default=Path(os.environ.get("RAG_KEYS_FILE") or "keys.toml"))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "add":
            cols = [c.strip() for c in args.collections.split(",") if c.strip()] or ["*"]
            key = add(args.file, args.name, args.role, cols)
            sys.stdout.write(f"{key}\n")
            sys.stderr.write(f"added {args.name} ({args.role}, {', '.join(cols)}) to {args.file}; the key above "
                             "is shown once\n")
        else:
            for e in read_keys_file(args.file):
                p = e.principal
                shown = "*" if p.collections is None else ",".join(sorted(p.collections))
                sys.stdout.write(f"{p.name}\t{p.role}\t{shown}\n")
    except ConfigError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

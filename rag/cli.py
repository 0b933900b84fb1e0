"""Command line: rag ingest | search | ask | report | serve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rag.core.config import Settings
from rag.core.errors import RagError
from rag.core.types import Filters

app = typer.Typer(help="Policy-document retrieval and cited QA.", no_args_is_help=True)
console = Console(stderr=True)


def _settings(index_dir: Path | None) -> Settings:
    s = Settings()
    if index_dir is not None:
        s.index_dir = index_dir
    return s


IndexOpt = Annotated[Path | None, typer.Option("--index-dir", help="Index folder (default RAG_INDEX_DIR)")]


@app.command()
def ingest(path: Annotated[Path, typer.Argument(help="File or folder of documents")],
           index_dir: IndexOpt = None,
           rebuild: Annotated[bool, typer.Option(help="Rebuild from scratch (also recovers a corrupt index)")] = False,
           collection: Annotated[str, typer.Option(help="Collection for these documents")] = "default",
           segment_chunks: Annotated[int, typer.Option(min=1, help="Chunks embedded per checkpoint")] = 512,
           ) -> None:
    """Add or update documents (unchanged files are skipped); a new index version is switched atomically.

    Files are loaded and chunked while the previous segment is embedded; a killed run (even kill -9) resumes
    from its last checkpoint when run again with the same files (rag/index/stream.py)."""
    from rag.index.stream import StreamParams, StreamProgress, ingest_files
    from rag.ingest.loaders import iter_files
    from rag.pipeline import Pipeline

    s = _settings(index_dir)
    if s.backend == "milvus":  # every version a Milvus collection behind an alias (docs/milvus.md)
        _ingest_milvus(s, path, collection, rebuild)
        return
    try:
        files = list(iter_files(path))
        embedder = Pipeline(s).embedder
        params = StreamParams(s.chunk_size, s.chunk_overlap, s.batch_size, s.index_kind, s.vector_store,
                              segment_chunks=segment_chunks, meta={"collection": collection})
        with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                      TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.1f} passages/s"),
                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("ingest", total=len(files), chunks=0, rate=0.0)

            def show(p: StreamProgress) -> None:
                if p.resumed_files and not bar.tasks[task].completed:
                    bar.reset(task, total=p.files_total - p.resumed_files, chunks=0, rate=0.0)  # ETA from now on
                bar.update(task, completed=p.files_done - p.resumed_files, chunks=p.chunks, rate=p.passages_per_s)

            rep = ingest_files(s.index_dir, embedder, files, params, rebuild=rebuild, root=path, progress=show)
    except RagError as e:
        console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(2) from e
    for f, why in rep.failures:
        console.print(f"[yellow]skipped[/] {f}: {why}")
    resumed = f", resumed after {rep.resumed_files} files" if rep.resumed_files else ""
    console.print(f"added {len(rep.added)}, replaced {len(rep.replaced)}, unchanged {len(rep.unchanged)}"
                  f" -> version {rep.version} ({rep.chunks} chunks{resumed})"
                  + (f" ({len(rep.failures)} files skipped)" if rep.failures else ""))


def _ingest_milvus(s: Settings, path: Path, collection: str, rebuild: bool) -> None:
    from rag.index.milvus_backend import ingest_path

    try:
        msg, failures = ingest_path(s, path, collection, rebuild)
    except RagError as e:
        console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(2) from e
    for f in failures:
        console.print(f"[yellow]skipped[/] {f.path}: {f.error}")
    console.print(msg + (f" ({len(failures)} files skipped)" if failures else ""))


def _pipeline(index_dir: Path | None):  # type: ignore[no-untyped-def]
    from rag.pipeline import Pipeline

    try:
        return Pipeline(_settings(index_dir)).load()
    except RagError as e:
        console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(2) from e


AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Validity on this day (YYYY-MM-DD) instead of today: "
                                                       "the documents in force then")]
SupersededOpt = Annotated[bool, typer.Option("--include-superseded",
                                             help="Also repealed and expired documents (cited ones are flagged)")]


def _filters(as_of: str | None, include_superseded: bool) -> Filters | None:
    """The validity filters of ``--as-of`` / ``--include-superseded`` (None: the defaults, documents in force)."""
    import datetime as dt

    if as_of is not None:
        try:
            as_of = dt.date.fromisoformat(as_of.strip()).isoformat()
        except ValueError as e:
            console.print(f"[red]error:[/] --as-of {as_of!r} is not a date: give YYYY-MM-DD, e.g. 2022-06-01")
            raise typer.Exit(2) from e
    if as_of is None and not include_superseded:
        return None
    return Filters(as_of=as_of, include_superseded=True if include_superseded else None)


@app.command()
def search(query: str, top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5, mode: str = "hybrid",
           index_dir: IndexOpt = None, as_of: AsOfOpt = None, include_superseded: SupersededOpt = False) -> None:
    """Print the top passages for a query (with their article path, 第三章 > 第十二条, when the text has one)."""
    filters = _filters(as_of, include_superseded)
    p = _pipeline(index_dir)
    try:
        hits, _ = p.search(query, top_k, mode, filters=filters)
    except RagError as e:
        console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(2) from e
    for h in hits:
        path = f" [{h.chunk.path}]" if h.chunk.path else ""
        typer.echo(f"[{h.rank}] {h.score:.4f} {h.chunk.doc_id}{path} {h.chunk.start}-{h.chunk.end}  "
                   f"{h.chunk.text[:120]}")


@app.command()
def ask(query: str, top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5, index_dir: IndexOpt = None,
        as_json: Annotated[bool, typer.Option("--json")] = False, as_of: AsOfOpt = None,
        include_superseded: SupersededOpt = False) -> None:
    """Answer a question from the documents, with citations (or say it is not in them). By default from the
    documents in force today; ``--as-of`` answers as of a day."""
    filters = _filters(as_of, include_superseded)
    p = _pipeline(index_dir)
    try:
        a = p.ask(query, top_k, filters)
    except RagError as e:
        console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(2) from e
    if as_json:
        from rag.output import AskResponse

        typer.echo(json.dumps(AskResponse.from_answer(a).model_dump(), ensure_ascii=False, indent=1))
        return
    typer.echo(a.text if a.answerable else a.message)
    for c in a.citations:
        path = f" {c.hit.chunk.path}" if c.hit.chunk.path else ""
        typer.echo(f"  [{c.n}] {c.hit.chunk.doc_id}{path} {c.quote_start}-{c.quote_end}: {c.quote}")


@app.command()
def report(days: Annotated[float, typer.Option(help="The last N days (0: all)")] = 30,
           top: Annotated[int, typer.Option(help="Rows per list")] = 20,
           csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one row per turn here")] = None,
           as_json: Annotated[bool, typer.Option("--json")] = False, index_dir: IndexOpt = None) -> None:
    """Questions report from the stored conversations: most asked, refused, rated down, latency."""
    from rag.conversations import ConversationStore, report_csv, store_target
    from rag.conversations import report as build

    target = store_target(_settings(index_dir))  # RAG_DATABASE_URL (PostgreSQL), else the SQLite file
    if isinstance(target, Path) and not target.exists():
        console.print(f"[red]error:[/] no conversations database at {target} (RAG_CONVERSATIONS_DB)")
        raise typer.Exit(2)
    store = ConversationStore(target)  # retention 0: reading never deletes
    try:
        r = build(store, days, top)
        if csv_out is not None:
            csv_out.write_text(report_csv(store, days), encoding="utf-8")
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(r, ensure_ascii=False, indent=1))
        return
    lat = r["latency_ms"]
    typer.echo(f"{r['turns']} questions in {r['conversations']} conversations (last {days:g} days; 0 = all): "
               f"{r['answered']} answered, {r['refused']} refused, {r['rewritten']} follow-ups rewritten, "
               f"👍 {r['feedback']['up']} 👎 {r['feedback']['down']}; latency p50 {lat['p50']} p95 {lat['p95']} ms")
    for title, rows in (("most asked", r["most_asked"]), ("refused (not in the documents?)", r["refused_questions"])):
        typer.echo(f"\n{title}:")
        for e in rows:
            typer.echo(f"  {e['count']:>4}  refused {e['refused']:>3}  {e['query']}")
    typer.echo("\nrated 👎:")
    for d in r["rated_down"]:
        typer.echo(f"  {d['created']}  {d['query']}  -- {d['comment'] or '(no comment)'}")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, index_dir: IndexOpt = None) -> None:
    """Serve the HTTP API and web page."""
    import os

    import uvicorn

    if index_dir is not None:
        os.environ["RAG_INDEX_DIR"] = str(index_dir)
    uvicorn.run("api.main:app", host=host, port=port, log_level="info")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()

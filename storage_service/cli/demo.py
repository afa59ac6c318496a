"""A two-stage pipeline on a small dataset, run, grown and re-run: ``python -m datumflow.storage_service.cli.demo``.

Stage 1 counts the words of each document (one datum per file); stage 2
adds the counts up. After three documents are added, only their three
datums run in stage 1; then the lineage of the total is printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence

from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobInfo
from datumflow.storage_service.pipelines.lineage import LineageNode
from datumflow.storage_service.store.store import Store
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

WORDS = ["versioned", "data", "with", "provenance", "for", "the", "pipelines", "people", "already", "run"]

COUNT = {
    "pipeline": {"name": "wordcount"},
    "description": "words per document",
    "input": {"pfs": {"repo": "docs", "glob": "/*"}},
    "transform": {
        "image": "busybox:1.36",
        "cmd": ["sh", "-c", "for f in /pfs/docs/*; do "
                "wc -w < \"$f\" | tr -d ' ' > /pfs/out/$(basename \"$f\" .txt).count; done"],
    },
    "parallelism_spec": {"constant": 4},
}
TOTAL = {
    "pipeline": {"name": "total"},
    "description": "words in all documents",
    "input": {"pfs": {"repo": "wordcount", "glob": "/"}},
    "transform": {"image": "busybox:1.36", "cmd": ["sh"],
                  "stdin": ["cat /pfs/wordcount/*.count | awk '{s += $1} END {print s}' > /pfs/out/total"]},
}


def documents(start: int, n: int) -> list[tuple[str, bytes]]:
    return [(f"doc{i:02d}.txt", " ".join(WORDS[: 3 + i % 8]).encode()) for i in range(start, start + n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", help="store folder (default: a fresh temporary one); './.demo' keeps it")
    args = parser.parse_args(argv)
    console = Console()
    root = args.root or tempfile.mkdtemp(prefix="datumflow-demo-")
    if args.root:
        shutil.rmtree(args.root, ignore_errors=True)
    try:
        with Store(root, fsync=False) as store:
            run(store, console)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def run(store: Store, console: Console) -> None:
    console.rule("[bold]datumflow pipelines demo")
    store.create_repo("docs", "a few text documents")
    store.put_files("docs", "master", documents(0, 12), description="12 documents")
    console.print("[green]docs[/]: committed 12 documents")
    svc = Pipelines(store)
    svc.create_pipeline(COUNT)
    svc.create_pipeline(TOTAL)
    console.print("created pipelines [cyan]wordcount[/] (one datum per file) -> [cyan]total[/] (one datum)")
    show_jobs(console, "first run", svc.process())
    console.print(f"total words: [bold]{store.get_file('total', 'master', 'total').decode().strip()}[/]")

    store.put_files("docs", "master", documents(12, 3), description="3 more documents")
    console.print("\n[green]docs[/]: added 3 documents")
    jobs = svc.process()
    show_jobs(console, "re-run after adding 3 files", jobs)
    ran = next(j for j in jobs if j.pipeline == "wordcount")
    console.print(f"wordcount ran [bold]{ran.processed}[/] new datums and reused [bold]{ran.skipped}[/]")
    console.print(f"total words: [bold]{store.get_file('total', 'master', 'total').decode().strip()}[/]")

    console.print()
    console.print(lineage_tree(svc.lineage("total", "master", "total"), limit=4))
    out = store.inspect_commit("total", "master")
    console.print(f"\ncommit total@{out.id[:12]} provenance: "
                  + ", ".join(f"{p.repo}@{p.commit[:8]}" for p in store.provenance("total", out.id, depth=1)))


def show_jobs(console: Console, title: str, jobs: list[JobInfo]) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("pipeline", "state", "datums", "processed", "skipped", "failed"):
        table.add_column(col, justify="right" if col not in ("pipeline", "state") else "left")
    for j in jobs:
        color = "green" if j.state.value == "success" else "red"
        table.add_row(j.pipeline, f"[{color}]{j.state.value}[/]", str(j.total), str(j.processed), str(j.skipped),
                      str(j.failed))
    console.print(table)


def lineage_tree(node: LineageNode, *, limit: int) -> Tree:
    tree = Tree(_label(node, root=True))
    _grow(tree, node, limit)
    return tree


def _grow(branch: Tree, node: LineageNode, limit: int) -> None:
    for child in node.inputs[:limit]:
        _grow(branch.add(_label(child)), child, limit)
    if len(node.inputs) > limit:
        branch.add(f"[dim]… and {len(node.inputs) - limit} more input files[/]")


def _label(node: LineageNode, *, root: bool = False) -> str:
    head = "[bold]lineage of[/] " if root else ""
    by = f"  [dim]written by {node.pipeline} datum {node.datum[:10]}[/]" if node.pipeline and node.datum else ""
    return f"{head}[cyan]{node.repo}[/]@{node.commit[:8]}:[yellow]{node.path}[/]{by}"


if __name__ == "__main__":
    sys.exit(main())

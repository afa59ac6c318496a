"""fsck and gc through the CLI, and what a corrupt chunk on disk looks like."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli

CONTENT = b"the quick brown fox jumps over the lazy dog\n" * 50


def _corrupt_pack(root: Path, content: bytes) -> None:
    """Flip one byte of ``content`` inside the pack file that holds it."""
    for pack in sorted((root / "objects" / "packs").rglob("*")):
        if not pack.is_file():
            continue
        data = bytearray(pack.read_bytes())
        at = data.find(content)
        if at >= 0:
            data[at + len(content) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))
            return
    raise AssertionError("content not found in any pack")


def test_fsck_and_gc_on_a_healthy_store(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:a.txt", "-", input=CONTENT)
    cli.ok("put", "sales@master:b.txt", "-", input=b"short-lived")
    cli.ok("commit", "delete", "sales@master")  # b.txt's chunk is now garbage

    assert cli.ok("fsck").startswith("ok: ")
    report = cli.json("fsck")
    assert report["ok"] is True and report["errors"] == [] and report["chunks"] == 1

    assert cli.json("gc")["chunks_deleted"] == 0  # within the default grace period
    freed = cli.json("gc", "--grace", "0")
    assert freed["chunks_deleted"] == 1
    text = cli.ok("gc", "--grace", "0")
    assert "chunks_deleted:  0" in text
    assert cli.ok("get", "sales@master:a.txt").encode() == CONTENT
    assert cli.json("fsck")["ok"] is True


def test_corrupt_chunk_fails_get_and_fsck_clearly(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:good.txt", "-", input=b"unrelated and intact")
    cli.ok("put", "sales@master:bad.txt", "-", input=CONTENT)
    _corrupt_pack(cli.root, CONTENT)

    assert "does not match its hash" in cli.fail("get", "sales@master:bad.txt")
    assert "does not match its hash" in cli.fail("get", "sales@master:bad.txt", "-o", "out.txt")
    assert sorted(p.name for p in cli.cwd.iterdir()) == [".datumflow"]  # no half-written output
    assert cli.ok("get", "sales@master:good.txt") == "unrelated and intact"

    result = cli.run("fsck")
    assert result.rc == 1
    assert result.stderr == "datumflow: error: fsck found 1 problem(s)\n"
    assert "does not match its hash" in result.out
    assert "FAILED" in result.out.splitlines()[-1]

    as_json = cli.run("fsck", "--json")
    assert as_json.rc == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and len(report["errors"]) == 1
    assert cli.json("fsck", "--fast")["ok"] is True  # --fast does not re-read chunks

"""The compiled folder scan gives exactly what the Python scan gives, on trees made to trip it up."""

from __future__ import annotations

import array
import os
import random
import shutil
import socket
import sysconfig
from pathlib import Path

import pytest
from datumflow.storage_service.sync import folder as folder_mod
from datumflow.storage_service.sync.folder import PART_SUFFIX, LocalFolder, scan
from datumflow.storage_service.sync.statcache import StatCache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

needs_compiled = pytest.mark.skipif(folder_mod.compiled is None, reason="the compiled scan is not built")


def _compiled(root: Path) -> tuple[list[str], list[int]]:
    blob, paths, stats = scan(str(root))
    assert paths is None and blob is not None
    return (blob.decode("utf-8", "surrogateescape").split("\0") if blob else []), stats.tolist()


def _python(root: Path) -> tuple[list[str], list[int]]:
    paths, stats = folder_mod._scan_python(str(root))
    return paths, stats.tolist()


def test_the_compiled_scan_is_built_where_a_compiler_is() -> None:
    """An install on a machine with a C compiler must have built it (the build is optional, so a broken
    one would otherwise pass unseen, and every sync would scan at Python's speed)."""
    if shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc") is None:
        pytest.skip("no C compiler here")
    assert folder_mod.compiled is not None


@needs_compiled
def test_a_tree_of_every_kind_of_entry(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "b" / "deep" / "er").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "empty").mkdir()
    for rel, body in [("z.txt", b"z"), ("a/1", b"11"), ("a/10", b""), ("a/2", b"2"), ("b/deep/er/x", b"xx"),
                      ("b/file", b"f"), ("b/half" + PART_SUFFIX, b"part"), ("m", b"m" * 5000),
                      ("sp ace", b" "), ("ünï", b"u"), ("b/deep/f", b"ff")]:
        (root / rel).write_bytes(body)
    (root / "link-to-file").symlink_to("m")
    (root / "a" / "link-up").symlink_to("../z.txt")
    (root / "link-to-dir").symlink_to("b")  # not followed
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")
    (root / "link-to-part").symlink_to("b/half" + PART_SUFFIX)
    os.mkfifo(root / "fifo")
    (root / "link-to-fifo").symlink_to("fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        got = _compiled(root)
    assert got == _python(root / "")
    paths = got[0]
    assert paths[:paths.index("a/1")] == ["link-to-file", "link-to-part", "m", "sp ace", "z.txt", "ünï"]
    assert "b/half" + PART_SUFFIX not in paths and "fifo" not in paths and "dangling" not in paths
    assert paths.index("b/file") < paths.index("b/deep/f")  # a folder's files before its folders
    sizes = dict(zip(paths, got[1][0::4], strict=True))
    assert sizes["link-to-file"] == 5000 and sizes["a/link-up"] == 1


@needs_compiled
def test_names_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    raw = os.fsencode(str(root)) + b"/caf\xe9"
    with open(raw, "wb") as fh:
        fh.write(b"latin-1 name")
    (root / "plain").write_bytes(b"p")
    paths, _ = _compiled(root)
    assert paths == _python(root)[0]
    assert os.fsencode(os.path.join(str(root), paths[0])) == raw


@needs_compiled
def test_a_missing_root_is_an_error_and_an_empty_one_is_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan(str(tmp_path / "nope"))
    (tmp_path / "e").mkdir()
    assert _compiled(tmp_path / "e") == ([], [])


@needs_compiled
def test_a_large_folder_split_across_threads_keeps_its_order(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    names = [f"{i:05d}" for i in range(3000)]
    random.Random(7).shuffle(names)
    for name in names:
        (root / name).write_bytes(name.encode())
    got = _compiled(root)
    assert got == _python(root)
    assert got[0] == sorted(names)
    assert got[1][2::4] == [os.lstat(root / n).st_ino for n in sorted(names)]


_names = st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..") and len(n.encode()) < 200)


@needs_compiled
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.lists(st.tuples(st.lists(_names, min_size=0, max_size=3), _names, st.booleans()), max_size=25))
def test_random_trees_scan_alike(tmp_path: Path, tree: list[tuple[list[str], str, bool]]) -> None:
    root = tmp_path / f"t{random.getrandbits(40)}"
    root.mkdir()
    for folders, name, is_link in tree:
        where = root.joinpath(*folders) if folders else root
        try:
            where.mkdir(parents=True, exist_ok=True)
            target = where / name
            if target.exists() or target.is_symlink():
                continue
            if is_link:
                target.symlink_to(name[::-1])
            else:
                target.write_bytes(name.encode())
        except (FileExistsError, NotADirectoryError, OSError):
            continue  # a file where a folder was wanted
    assert _compiled(root) == _python(root)
    shutil.rmtree(root)


@needs_compiled
def test_a_folder_hands_its_blob_to_the_cache_unchanged(tmp_path: Path) -> None:
    """The unchanged check compares the compiled blob with the saved one as bytes."""
    root = tmp_path / "f"
    root.mkdir()
    (root / "a").write_bytes(b"a")
    os.environ["DATUMFLOW_SYNC_CACHE"] = str(tmp_path / "cache")
    try:
        folder = LocalFolder(str(root), StatCache(str(root)))
        assert folder.paths_blob == b"a" and folder.paths == ["a"] and folder.count == 1
        assert isinstance(folder.stats, array.array)
    finally:
        del os.environ["DATUMFLOW_SYNC_CACHE"]


@needs_compiled
def test_a_folder_changing_under_the_scan_is_never_an_error(tmp_path: Path) -> None:
    """Folders and files created and removed while scans run: a scan never raises, and lists only files
    that were there at some moment (each at most its full size: it may be caught mid-write)."""
    import threading
    import time

    root = tmp_path / "busy"
    root.mkdir()
    (root / "stays").write_bytes(b"s" * 7)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            sub = root / f"x{i % 10}"
            try:
                sub.mkdir(exist_ok=True)
                for j in range(20):
                    (sub / f"f{j}").write_bytes(b"x" * j)
                shutil.rmtree(sub)
            except OSError:
                pass
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        end = time.monotonic() + 2
        scans = 0
        while time.monotonic() < end:
            paths, stats = _compiled(root)
            sizes = dict(zip(paths, stats[0::4], strict=True))
            assert sizes["stays"] == 7
            assert all(p == "stays" or (p.startswith("x") and sizes[p] <= int(p.rsplit("/f", 1)[1]))
                       for p in paths)
            scans += 1
    finally:
        stop.set()
        worker.join()
    assert scans > 10

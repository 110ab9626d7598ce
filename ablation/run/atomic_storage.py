"""The run directory's file system for Ray Tune: local files, each replaced atomically.

Tune stages a sweep's files on the driver (experiment state, searcher state, every trial's
``result.json``) and copies the whole folder into the run directory every second. Copied through
pyarrow's local file system, a file is truncated first and then written, so a driver killed
mid-copy leaves empty or half-written files there: finished trials with no results (seen in
``tests/test_seed_search.py``'s SIGKILL test), or an experiment state ``--resume`` cannot read.
Here every file is written beside its target and renamed over it when complete, so a kill leaves
each file either as it was or as it is now, never cut.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow
import pyarrow.fs as pafs

#: How a file being written is named in its folder until it is complete.
PARTIAL_PREFIX = ".partial-"

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class _ReplaceOnClose(io.FileIO):
    """A new file beside ``path`` that replaces ``path`` when closed (not before)."""

    def __init__(self, path: str):
        parent, name = os.path.split(path)
        fd, self.partial = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{name}.", dir=parent or ".")
        os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would have made it, not mkstemp's 0600
        super().__init__(fd, "wb", closefd=True)
        self.target = path

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        os.replace(self.partial, self.target)


class AtomicLocalHandler(pafs.FileSystemHandler):
    """pyarrow's local file system, except that files written are replaced atomically."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def equals(self, other: object) -> bool:
        return self == other

    def get_type_name(self) -> str:
        return "ablation-atomic-local"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("refusing to delete the contents of the root directory")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with open(src, "rb") as source, _ReplaceOnClose(dest) as target:
            shutil.copyfileobj(source, target)

    def open_input_stream(self, path: str) -> pyarrow.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pyarrow.NativeFile:
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: object = None) -> pyarrow.NativeFile:
        return pyarrow.PythonFile(_ReplaceOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata: object = None) -> pyarrow.NativeFile:
        return self.local.open_append_stream(path)


def atomic_local_fs() -> pafs.FileSystem:
    """The file system to give Tune (``storage_filesystem``) for a run directory on this machine
    or on a shared mount."""
    return pafs.PyFileSystem(AtomicLocalHandler())


def remove_partials(run_dir: str | Path) -> int:
    """Delete the half-written files a killed driver left in ``run_dir``; returns how many."""
    partials = [p for p in Path(run_dir).rglob(f"{PARTIAL_PREFIX}*") if p.is_file()]
    for p in partials:
        p.unlink(missing_ok=True)
    return len(partials)

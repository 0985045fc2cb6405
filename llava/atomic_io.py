"""The one atomic writer of the `llava` package: write to a temporary name in the destination folder, then rename
(`os.replace`), so a killed run never leaves a half-written file (or checkpoint folder: `atomic_folder`) that a later
run would take as finished.

Files get the permissions a plain `open(path, "w")` would give (0o666 minus the umask), not `mkstemp`'s 0o600.
`cv_reader` has its own writer (`cv_reader.assets`): it cannot import llava.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process umask. Linux reports it in /proc without changing it; elsewhere `os.umask` can only be read by
    setting it, so it is set back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to `path` for any writer (PyAV, safetensors, `Path.write_text`); on success
    the file is renamed to `path` with normal permissions, on error it is removed and nothing appears at `path`.

    The temporary name keeps `path`'s suffix, so writers that pick a format from it (PyAV: `.mp4`) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yields a fresh temporary folder beside `folder`; when the block ends without an error it replaces `folder`
    (an older folder there is removed only once the new one is in place), otherwise it is removed. The folder gets
    the permissions of a plain `mkdir` (0o777 minus the umask), not `mkdtemp`'s 0o700."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        scratch.chmod(0o777 & ~_umask())
        yield scratch
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(scratch, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(temporary_path)`, then the rename of `atomic_path`. Returns `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomic `Path.write_bytes`."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic `Path.write_text` (UTF-8)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["atomic_folder", "atomic_path", "write_atomic", "write_bytes", "write_text"]

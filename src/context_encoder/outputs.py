"""Output files: their paths checked before any work starts, their bytes written all or nothing.

Every file the package writes (images, reports, weights, checkpoints) goes through `atomic_write`: the
bytes go to a temporary file `.{name}.{pid}.tmp` beside the target, are flushed to disk and renamed
over it. A full disk or a crash leaves the previous file as it was (or no file), never half of one;
the temporary file a killed process leaves is removed by the next write of the same file.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ContextEncoderError, first_line

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


class OutputError(ContextEncoderError):
    """An output path that cannot be written, or a write that failed (full disk, no permission)."""

    exit_code = 2


def reason(exc: OSError) -> str:
    """The one-line cause of a failed file operation: 'No space left on device', 'Permission denied', ..."""
    return os.strerror(exc.errno) if exc.errno is not None else first_line(exc)


def temp_path(path: Path) -> Path:
    """The temporary file this process writes `path` through (hidden, beside it, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OverflowError:
        return False
    return True


def remove_orphans(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the `.{name}.{pid}.tmp` files in `folder` whose writing process no longer runs; returns them.

    With `name`, only the temporary files of that target (what `atomic_write` cleans before writing it).
    """
    folder = Path(folder)
    prefix = f".{name}." if name is not None else "."
    removed = []
    try:
        with os.scandir(folder) as entries:
            candidates = [e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:  # no folder yet, or not readable: nothing to clean
        return removed
    for candidate in candidates:
        match = _TEMP.match(candidate)
        if match and (name is None or match["name"] == name) and not _alive(int(match["pid"])):
            try:
                (folder / candidate).unlink()
                removed.append(folder / candidate)
            except OSError:
                pass
    return removed


def _open_temp(tmp: Path) -> IO[bytes]:
    """The temporary file, opened for writing (one seam: tests make its writes fail like a full disk)."""
    return open(tmp, "wb")  # noqa: SIM115 - closed by atomic_write


@contextmanager
def atomic_write(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file object whose bytes replace `path` only when the block ends without an error.

    Creates the parent folders. Any `OSError` (full disk, permission, a parent that is a file) becomes
    an `OutputError` naming the file; the previous content of `path` is left as it was.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent, path.name)
        with _open_temp(tmp) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {reason(exc)}") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _writable_folder(folder: Path, what: str) -> None:
    """`folder` is, or can be made as, a folder this process may write in (no side effect)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"cannot write {what}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what}: the folder {existing} is not writable")


def check_output_file(path: str | Path, suffixes: Collection[str] | None = None, what: str = "output") -> Path:
    """Check, before any work, that `path` can be written as a file; returns it as a `Path`.

    `suffixes` (lower case, with the dot) are the file types the caller can write. Refused: a path
    ending in a separator or naming a folder, a missing or unknown suffix, a parent that is a file
    or a folder that cannot be written. Raises `OutputError` with one line naming the problem.
    """
    raw = os.fspath(path)
    p = Path(raw)
    if raw.endswith(("/", os.sep)) or p.is_dir():
        raise OutputError(f"the {what} {raw} is a folder; name a file (e.g. {p / 'filled.png'})")
    if suffixes is not None:
        if not p.suffix:
            raise OutputError(f"the {what} {raw} has no file extension (e.g. .png): it says which format to write")
        if p.suffix.lower() not in suffixes:
            known = ", ".join(sorted(suffixes)[:12])
            raise OutputError(f"cannot write '{p.suffix}' files ({raw}); use one of: {known}")
    _writable_folder(p.parent, raw)
    return p


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """Check, before any work, that `path` is or can be made as a writable folder; returns it as a `Path`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"the {what} {p} is a file, not a folder")
    _writable_folder(p, str(p))
    return p


def batch_targets(
    sources: Sequence[Path], folder: Path, suffix: str | None = ".png", also_read: Sequence[tuple[Path, str]] = ()
) -> list[Path]:
    """One output per input in `folder`: `<stem><suffix>`, or `<name><suffix>` for inputs sharing a stem;
    with `suffix=None` each input's own name (and so its format).

    Names are compared case-insensitively (as macOS and Windows file systems do), so a.jpg and a.PNG
    give a.jpg.png and a.PNG.png. Raises `OutputError` naming both files when two inputs would still
    share an output, or when an output would replace one of the inputs or of the other files the run reads,
    `also_read` ((file, what it is), e.g. (masks/a.png, "mask")).
    """
    stems = Counter(p.stem.lower() for p in sources)
    targets = [
        folder
        / (p.name if suffix is None else f"{p.stem}{suffix}" if stems[p.stem.lower()] == 1 else f"{p.name}{suffix}")
        for p in sources
    ]
    first: dict[str, Path] = {}
    for src, dst in zip(sources, targets):
        other = first.setdefault(dst.name.lower(), src)
        if other != src:
            raise OutputError(f"{other} and {src} would both be written to {dst}; rename one of them")
    read = [*((p, "input") for p in sources), *also_read]
    files = {(st.st_dev, st.st_ino): (p, what) for p, what in read for st in [p.stat()]}
    for dst in targets:
        try:
            st = dst.stat()
        except OSError:
            continue
        found = files.get((st.st_dev, st.st_ino))
        if found is not None:
            raise OutputError(f"the output {dst} would replace the {found[1]} {found[0]}: choose another -o folder")
    return targets


def open_log(path: str | Path) -> IO[str]:
    """An append-only JSON-lines file (e.g. stats.jsonl), opened for appending.

    A last line cut short by a crash or a full disk is dropped first, so every line stays one record.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size:
            with open(path, "rb+") as f:
                data = f.read()
                if not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        return open(path, "a")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {reason(exc)}") from None


def append_record(log: IO[str], record: dict[str, Any]) -> None:
    """Append `record` as one line of strict JSON: NaN and infinities become null; a failed write is an
    `OutputError`."""
    clean = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in record.items()}
    try:
        log.write(json.dumps(clean, allow_nan=False) + "\n")
        log.flush()
    except OSError as exc:
        raise OutputError(f"cannot write {log.name}: {reason(exc)}") from None

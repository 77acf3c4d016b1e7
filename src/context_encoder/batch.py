"""`inpaint --batch`: a folder of photos, optionally a folder of masks paired by file stem, into a folder.

Planned before any work (every refusal is one line before the first fill): the photos, their masks, their
outputs (each keeps its input's name and so its format; see `photo_file`), the shard of them this process
takes (`--shard K/N`: photo i of the sorted list goes to shard i mod N, the same split on every machine),
and those already done (`--skip-existing`: an output is written atomically, so one that exists is whole).
Then each photo is filled in turn; one that fails (an unreadable file, a mask of the wrong size) is named
in one line and counted, and the run goes on.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data import IMAGE_SUFFIXES
from .errors import ContextEncoderError, InputError
from .outputs import batch_targets, check_output_folder
from .progress import Progress

LISTED = 5  # photos named in the error for photos without a mask; the rest are counted


@dataclass(frozen=True)
class BatchItem:
    photo: Path
    mask: Path | None  # from --masks DIR; None: the hole comes from --mask FILE, --box or --center
    output: Path


@dataclass
class BatchPlan:
    items: list[BatchItem]
    total: int  # photos in the folder (before sharding and skipping)
    skipped: int = 0  # outputs that exist already (--skip-existing)
    shard: tuple[int, int] | None = None


@dataclass
class BatchResult:
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (1 <= K <= N) -> (K, N); anything else is an `InputError`."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise InputError(f"--shard must be K/N with 1 <= K <= N (e.g. 1/4), got '{text}'")
    return int(found[1]), int(found[2])


def _images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def pair_masks(photos: Sequence[Path], folder: Path) -> list[Path]:
    """The mask of each photo: the image in `folder` with the photo's stem (case-insensitively, any image
    suffix). Photos without one, or with two candidates, are an `InputError` naming them."""
    by_stem: dict[str, list[Path]] = {}
    for mask in _images(folder, "--masks"):
        by_stem.setdefault(mask.stem.lower(), []).append(mask)
    missing = [p.name for p in photos if p.stem.lower() not in by_stem]
    if missing:
        more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        raise InputError(
            f"{len(missing)} of {len(photos)} photos have no mask of the same name in {folder}: "
            f"{', '.join(missing[:LISTED])}{more}"
        )
    for photo in photos:
        found = by_stem[photo.stem.lower()]
        if len(found) > 1:
            raise InputError(f"{photo.name} has {len(found)} masks in {folder} ({found[0].name}, {found[1].name})")
    return [by_stem[p.stem.lower()][0] for p in photos]


def plan_batch(
    folder: Path,
    output: str,
    masks: Path | None = None,
    shard: tuple[int, int] | None = None,
    skip_existing: bool = False,
) -> BatchPlan:
    """Everything `inpaint --batch` will do, checked before any work (see the module's docstring)."""
    photos = _images(folder, "--batch")
    if not photos:
        raise InputError(f"no images in {folder}")
    pairs = pair_masks(photos, masks) if masks is not None else [None] * len(photos)
    out = check_output_folder(output, "output folder")
    # a mask folder given as -o: no output may replace a mask either
    targets = batch_targets(photos, out, suffix=None, also_read=[(m, "mask") for m in pairs if m is not None])
    items = [BatchItem(p, m, t) for p, m, t in zip(photos, pairs, targets)]
    if shard is not None:
        k, n = shard
        items = items[k - 1 :: n]
    plan = BatchPlan(items, len(photos), shard=shard)
    if skip_existing:
        plan.items = [item for item in items if not item.output.is_file()]
        plan.skipped = len(items) - len(plan.items)
    return plan


def run_batch(plan: BatchPlan, fill: Callable[[BatchItem], None], progress: bool = True) -> BatchResult:
    """`fill` each item in turn; a `ContextEncoderError` of one item is reported and counted, not raised."""
    result = BatchResult()
    bar = Progress(len(plan.items), desc="inpaint", enabled=progress, every=1, min_interval=5.0)
    start = time.perf_counter()
    for item in plan.items:
        try:
            fill(item)
            result.done += 1
            print(item.output)
        except ContextEncoderError as exc:
            result.failed.append((item.photo, str(exc)))
            print(f"error: {item.photo.name}: {exc}", file=sys.stderr)
        bar.update(1)
        bar.set_postfix(f"{len(result.failed)} failed" if result.failed else "")
    bar.close()
    print(summary(plan, result, time.perf_counter() - start), file=sys.stderr)
    return result


def summary(plan: BatchPlan, result: BatchResult, seconds: float) -> str:
    """One line: how many photos were filled, skipped and failed, of how many."""
    of = f"of {plan.total} photos"
    if plan.shard is not None:
        of += f", shard {plan.shard[0]}/{plan.shard[1]} ({len(plan.items) + plan.skipped} of them)"
    parts = [f"filled {result.done}"]
    if plan.skipped:
        parts.append(f"skipped {plan.skipped} already done")
    parts.append(f"failed {len(result.failed)}")
    return f"batch: {', '.join(parts)} {of} in {seconds:.1f} s"

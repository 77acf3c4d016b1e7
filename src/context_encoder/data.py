"""Image folders, the released augmentation, a deterministic held-out split and resumable loaders.

Training draws an endless stream of samples: sample number n is image `perm_e[n mod N]` of epoch
e = n // N (a fresh seeded permutation per epoch), cropped and flipped with a generator seeded by
(seed, n). The stream is a pure function of the seed and the position, so a run resumed at step k
sees exactly the batches an uninterrupted run would, whatever the number of loader workers.

Decoding a file (the pixel cap, masks, any Pillow mode) is `context_encoder.decode`'s, the one decoder of
every image read; this module re-exports the names it used to define there.
"""

from __future__ import annotations

import hashlib
import logging
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import DataConfig
from .decode import IMAGE_SUFFIXES, load_image, opened
from .decode import MAX_PIXELS as MAX_PIXELS  # re-exported: these were defined here before `decode`
from .decode import load_mask as load_mask
from .decode import max_pixels as max_pixels
from .decode import to_rgb as to_rgb
from .errors import DataError

log = logging.getLogger(__name__)


def list_images(root: str | Path) -> list[Path]:
    """Every file under `root` (recursively) whose suffix Pillow knows, sorted; a missing folder is an error."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def readable_images(root: str | Path) -> list[Path]:
    """The images under `root` whose header Pillow can parse and whose size is within `max_pixels()`.

    The others are skipped with one warning that counts them. A file that is truncated further on
    passes here and is skipped (and counted) when a loader fails to decode it.
    """
    paths = list_images(root)
    good, bad = [], []
    for p in paths:
        try:
            with opened(p, "image"):
                pass
            good.append(p)
        except DataError as exc:
            bad.append(exc)
    if bad:
        log.warning("skipped %d unreadable image file(s) under %s (first: %s)", len(bad), root, bad[0])
    if not good:
        raise DataError(f"no readable images under {root} ({len(paths)} candidate file(s))")
    return good


def holdout_split(paths: Sequence[Path], root: str | Path, fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic (train, held-out) split by a hash of each file's path relative to `root`.

    Stable across machines and file orders, and adding files never moves an old one across the split.
    """
    if fraction <= 0:
        return list(paths), []
    train, held = [], []
    for p in paths:
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()
        h = int.from_bytes(hashlib.sha1(rel.encode()).digest()[:8], "big") / 2**64
        (held if h < fraction else train).append(p)
    if not train:
        raise DataError(f"held-out fraction {fraction} leaves no training images under {root}")
    return train, held


def pil_to_tensor(img: Image.Image) -> Tensor:
    """RGB PIL image to a (3, H, W) float tensor in [-1, 1]."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return arr.permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def tensor_to_pil(t: Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] to an RGB PIL image."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, keeping the aspect ratio (no-op when already there)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)


class ImageDataset(Dataset):
    """Images as (3, S, S) tensors in [-1, 1].

    Training items are keyed by `(index, sample_number)`: resize the shorter side to `load_size`, take
    a random S x S crop and flip at random, all drawn from (seed, sample_number). Evaluation items are
    keyed by a plain index: same resize, centre crop, no flip.

    With `zoom` > 1 a training item first cuts a random square whose side is drawn between 1/zoom of
    the shorter side and all of it, and shrinks that square to `load_size`: closer views of the same
    photographs. The square never has fewer than `load_size` pixels a side, so small images (CIFAR-10
    at 32 px) are not enlarged and not zoomed.

    With `saturation` > 0 a training item's colour saturation is scaled by a factor drawn uniformly
    from [1 - saturation, 1 + saturation] (0: grey, 1: unchanged).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        image_size: int,
        load_size: int,
        flip: bool = True,
        seed: int = 0,
        cache_max_images: int = 0,
        zoom: float = 1.0,
        saturation: float = 0.0,
    ):
        self.paths, self.image_size, self.load_size = list(paths), image_size, load_size
        self.flip, self.seed, self.zoom, self.saturation = flip, seed, zoom, saturation
        self.failures = 0
        # decoded, resized images kept in memory (per loader worker) when the set is small enough
        self.cache: dict[int, Image.Image] | None = {} if len(self.paths) <= cache_max_images else None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, index: int) -> Image.Image:
        if self.cache is not None:
            if index not in self.cache:
                self.cache[index] = self._decode_file(index)
            return self.cache[index]
        return self._decode_file(index)

    def _decode_file(self, index: int) -> Image.Image:
        for attempt in range(len(self.paths)):  # a file that fails to decode is replaced by the next one
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                img = load_image(path)
                size = self.load_size
                if self.zoom > 1:  # keep enough pixels for the closest view, at most the original ones
                    size = max(size, min(min(img.size), round(size * self.zoom)))
                return resize_shorter(img, size)
            except DataError as exc:
                self.failures += 1
                log.warning("%s (skipped; %d so far in this loader)", exc, self.failures)
        raise DataError("no image in the data set could be decoded")

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        s = self.image_size
        if isinstance(key, tuple):
            index, sample = key
            img = self._decode(index)
            g = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + sample) & 0x7FFF_FFFF_FFFF_FFFF)
            if self.zoom > 1:
                img = self._zoom_crop(img, g)
            w, h = img.size
            left = int(torch.randint(0, w - s + 1, (1,), generator=g))
            top = int(torch.randint(0, h - s + 1, (1,), generator=g))
            img = img.crop((left, top, left + s, top + s))
            if self.flip and bool(torch.rand((), generator=g) < 0.5):
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            if self.saturation > 0:  # drawn last: the crops and flips above do not depend on it
                factor = 1 + self.saturation * (2 * float(torch.rand((), generator=g)) - 1)
                img = ImageEnhance.Color(img).enhance(factor)
        else:
            img = resize_shorter(self._decode(key), self.load_size)
            w, h = img.size
            left, top = (w - s) // 2, (h - s) // 2
            img = img.crop((left, top, left + s, top + s))
        return pil_to_tensor(img)

    def _zoom_crop(self, img: Image.Image, g: torch.Generator) -> Image.Image:
        """A random square of 1/zoom to all of the shorter side (never under load_size px), shrunk to load_size."""
        w, h = img.size
        short = min(w, h)
        smallest = max(self.load_size, round(short / self.zoom))
        side = smallest + int(torch.randint(0, short - smallest + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        return resize_shorter(img.crop((left, top, left + side, top + side)), self.load_size)


class StreamSampler(Sampler):
    """Endless `(index, sample_number)` keys from sample `start` on: a new seeded permutation every epoch.

    With `shard=(rank, world_size, global_batch)` a process keeps only its slice of every global batch:
    rank r of N gets sample numbers k*B + r*B/N ... k*B + (r+1)*B/N - 1 of batch k.
    """

    def __init__(self, n: int, seed: int, start: int = 0, shard: tuple[int, int, int] = (0, 1, 1)):
        self.n, self.seed, self.start = n, seed, start
        self.rank, self.world, self.global_batch = shard
        self.local = self.global_batch // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        sample = self.start
        while True:
            epoch, offset = divmod(sample, self.n)
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for i in perm[offset:].tolist():
                if self.world == 1 or (sample % self.global_batch) // self.local == self.rank:
                    yield i, sample
                sample += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for progress estimates
        return 2**62


def resample(paths: Sequence[Path], n: int) -> list[Path]:
    """`n` entries evenly spaced over `paths`: thinned when n < len, else each repeated n // len times or once more."""
    return [paths[i * len(paths) // n] for i in range(n)]


def training_paths(cfg: DataConfig) -> tuple[list[Path], list[Path]]:
    """(train, held-out) image paths from `train_dir` and any `extra_dirs`.

    Held-out images are `val_dir` when given, else a hashed slice of each training folder. With
    several folders and `mix = "balanced"`, every folder fills the same share of the training list
    (smaller folders repeat, evenly) and of the held-out list (larger folders' held-out slices are
    thinned to the smallest one's size), so a small folder is not drowned by a large one.
    """
    if not cfg.train_dir:
        raise DataError("no training data: pass --data DIR (a folder of images, searched recursively)")
    roots = [cfg.train_dir, *cfg.extra_dirs]
    splits = []
    for root in roots:
        paths = readable_images(root)
        splits.append((paths, []) if cfg.val_dir else holdout_split(paths, Path(root), cfg.val_fraction))
    trains, helds = [t for t, _ in splits], [h for _, h in splits]
    if len(roots) > 1 and cfg.mix == "balanced":
        longest = max(len(t) for t in trains)
        trains = [resample(t, longest) for t in trains]
        shortest = min((len(h) for h in helds if h), default=0)
        helds = [resample(h, shortest) if h else h for h in helds]
    train = [p for t in trains for p in t]
    held = readable_images(cfg.val_dir) if cfg.val_dir else [p for h in helds for p in h]
    if len(roots) > 1:
        log.info("training images: %s", ", ".join(f"{r}: {len(t)}" for r, t in zip(roots, trains)))
    return train, held


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the training process, which saves a checkpoint and stops them.

    A Ctrl-C reaches the whole process group; without this a worker would die first and take the
    training process down with an error instead of a clean checkpointed stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def training_loader(
    dataset: ImageDataset,
    global_batch: int,
    seed: int,
    start_step: int,
    workers: int,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Tensor]:
    """Endless batches from batch `start_step` of the seeded stream: this rank's (B/N, 3, S, S) slice of each."""
    loader = DataLoader(
        dataset,
        batch_size=global_batch // world_size,
        sampler=StreamSampler(len(dataset), seed, start_step * global_batch, (rank, world_size, global_batch)),
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_ignore_stop_signals if workers > 0 else None,
    )
    return iter(loader)

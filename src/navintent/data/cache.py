"""Image decoding (NoMaD's crop + resize) and the decoded-image cache shared by DataLoader workers.

Decision (why a uint8 ``.npy`` memmap and not LMDB as NoMaD): NoMaD's LMDB stores the JPEG *bytes*, so every
sample still decodes, crops and resizes ``context_size + 2`` full-size JPEGs. Here each image is decoded ONCE
into one uint8 array ``[N_images, H, W, 3]`` per (image list, image size), written to a temporary file and
renamed into place (atomic: readers never see a half-written cache; concurrent builders, e.g. DDP ranks, each
write their own temporary file and the last rename wins with identical content). Workers open it read-only
with ``np.load(mmap_mode="r")``; the OS page cache shares the pages between all workers and processes, a read
is a memory copy (no decode), there is no extra dependency and nothing to lock. Cost: disk = N * H * W * 3
bytes (27.6 kB per frame at 96x96).

Staleness (NoMaD's trap: its LMDB and index pickles are keyed by name only): the file name carries a SHA-256
of the format version, the crop/resize rule, ``image_size``, the dataset folder and every image's relative
path, size and mtime (ns). Changing any image, adding or removing one, or changing a parameter gives a new key,
hence a fresh cache; an old cache is never read for new data.

Location: ``cache_dir`` argument, else ``$NAVINTENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/navintent/images``,
else ``~/.cache/navintent/images``. A user cache dir rather than the dataset folder, because dataset folders are
often read-only or shared, and the content key makes one shared cache directory safe.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from navintent.data.format import DataError
from navintent.transforms import crop_box

CACHE_FORMAT_VERSION = 1
# Identifies the decode rule of decode_image; change it whenever that rule (or transforms.crop_box) changes.
CROP_RULE = "center-crop-4:3(nomad-int-round,height-crop-if-narrower)|PIL-BICUBIC|RGB|16bit-high-byte"


def default_cache_dir() -> Path:
    """``$NAVINTENT_CACHE_DIR`` or ``$XDG_CACHE_HOME/navintent/images`` or ``~/.cache/navintent/images``."""
    if os.environ.get("NAVINTENT_CACHE_DIR"):
        return Path(os.environ["NAVINTENT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "navintent" / "images"


# 16-bit single-channel modes (e.g. a 16-bit grayscale PNG). PIL's own convert("RGB") CLIPS them at 255 (an
# image turns almost white), so they are reduced to their high byte first.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# 32-bit integer and float images: no defined range to map to 8 bits -> refused.
_REFUSED_MODES = ("I", "F")


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """Any 8-bit mode -> RGB by PIL's conversion (grayscale replicated, palette expanded, CMYK/YCbCr converted,
    alpha DROPPED, not composited); 16-bit grayscale -> its high byte (``v >> 8``), then RGB; 32-bit int/float
    modes are refused with a :class:`DataError` naming the file and the mode."""
    if img.mode in _SIXTEEN_BIT_MODES:
        high = (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high, mode="L").convert("RGB")
    if img.mode in _REFUSED_MODES:
        kind = "32-bit integer" if img.mode == "I" else "32-bit float"
        raise DataError(
            f"{path}: {kind} image (PIL mode {img.mode!r}) has no defined 8-bit range; convert it to 8-bit RGB "
            "(or 16-bit grayscale) first"
        )
    return img.convert("RGB")


def decode_image(path: Path, image_size: Sequence[int]) -> np.ndarray:
    """Decode ``path``, convert to RGB (see :func:`_to_rgb`), centre-crop to 4:3, resize to ``image_size`` =
    [width, height] (bicubic).

    Returns uint8 ``[height, width, 3]``. Raises :class:`DataError` naming the file if it is missing,
    unreadable, not an image, truncated, of a refused mode, or too small to crop (under 2 pixels on a side).
    """
    try:
        with Image.open(path) as img:
            img.load()  # raises OSError on a truncated file (PIL's LOAD_TRUNCATED_IMAGES stays False)
            rgb = _to_rgb(img, path)
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: image file is missing") from err
    except UnidentifiedImageError as err:
        raise DataError(f"{path}: not a readable image") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated image: {err}") from err
    left, top, right, bottom = crop_box(*rgb.size)
    if right <= left or bottom <= top:
        raise DataError(f"{path}: image of {rgb.size[0]}x{rgb.size[1]} pixels is too small to crop to 4:3")
    rgb = rgb.crop((left, top, right, bottom)).resize((int(image_size[0]), int(image_size[1])), Image.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def cache_key(paths: Sequence[Path], image_size: Sequence[int], root: Path) -> str:
    """SHA-256 over version, crop rule, size, root and each image's (relative path, size, mtime_ns).

    Raises :class:`DataError` naming the first missing image.
    """
    h = hashlib.sha256()
    h.update(f"v{CACHE_FORMAT_VERSION}|{CROP_RULE}|{int(image_size[0])}x{int(image_size[1])}|".encode())
    h.update(str(Path(root).resolve()).encode())
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError as err:
            raise DataError(f"{p}: image file is missing") from err
        rel = os.path.relpath(p, root)
        h.update(f"\n{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


class ImageStore:
    """Decoded images by index: ``store[i] -> uint8 [H, W, 3]``, ``store.take(idx) -> [len(idx), H, W, 3]``.

    ``use_cache=True``: memmap cache (see module docstring), built on first use with a progress bar,
    decoding every image once, so a bad image is reported at construction, never in a worker.
    ``build_threads`` (default ``min(8, cpu_count)``) decode in parallel while building.
    ``use_cache=False``: decodes on every access (slow; for one-off inspection).
    Picklable: the memmap is reopened lazily in each worker process.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        image_size: Sequence[int],
        *,
        root: Path,
        name: str,
        use_cache: bool = True,
        cache_dir: str | Path | None = None,
        progress: bool = True,
        build_threads: int | None = None,
    ) -> None:
        self.build_threads = build_threads if build_threads is not None else min(8, os.cpu_count() or 1)
        if self.build_threads < 1:
            raise ValueError(f"build_threads must be >= 1, got {build_threads}")
        self.paths = [Path(p) for p in paths]
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.use_cache = use_cache
        self._array: np.ndarray | None = None
        self.cache_path: Path | None = None
        key = cache_key(self.paths, self.image_size, root)  # also checks every image exists
        if use_cache:
            directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "dataset"
            w, h = self.image_size
            self.cache_path = directory / f"{safe}-{w}x{h}-{len(self.paths)}-{key[:24]}.npy"
            if not self.cache_path.exists():
                self._build(progress)

    def __len__(self) -> int:
        return len(self.paths)

    def _build(self, progress: bool) -> None:
        assert self.cache_path is not None
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        w, h = self.image_size
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(self.paths), h, w, 3))

            def decode(i: int, out: np.ndarray = out) -> str | None:
                try:
                    out[i] = decode_image(self.paths[i], self.image_size)
                except DataError as err:
                    return str(err)
                return None

            # Pillow releases the GIL while decoding and resizing, so threads scale without process start-up.
            errors: list[str] = []
            block = 1024  # bounded number of pending futures, whatever the dataset size
            with (
                ThreadPoolExecutor(max_workers=self.build_threads) as pool,
                tqdm(
                    total=len(self.paths), desc=f"caching {self.cache_path.name}", disable=not progress
                ) as bar,
            ):
                for lo in range(0, len(self.paths), block):
                    idx = range(lo, min(lo + block, len(self.paths)))
                    errors.extend(e for e in pool.map(decode, idx) if e is not None)
                    bar.update(len(idx))
            out.flush()
            del out
            if errors:
                more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
                raise DataError(f"{len(errors)} bad image(s):\n" + "\n".join(errors[:20]) + more)
            os.replace(tmp, self.cache_path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _open(self) -> np.ndarray:
        if self._array is None:
            assert self.cache_path is not None
            arr = np.load(self.cache_path, mmap_mode="r")
            expected = (len(self.paths), self.image_size[1], self.image_size[0], 3)
            if arr.shape != expected or arr.dtype != np.uint8:
                raise DataError(
                    f"{self.cache_path}: cache has shape {arr.shape} {arr.dtype}, expected {expected}"
                )
            self._array = arr
        return self._array

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` (a copy)."""
        if self.use_cache:
            return self._open()[np.asarray(indices, dtype=np.int64)]
        return np.stack([decode_image(self.paths[int(i)], self.image_size) for i in indices])

    def __getitem__(self, i: int) -> np.ndarray:
        return self.take([i])[0]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None  # each process maps the file itself
        return state

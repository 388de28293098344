"""Calibration data behind one small reader interface: image folders, .npy, .npz or synthetic.

A reader knows how many samples it has and yields tuples of input batches. Shapes and dtypes are
checked against the model's inputs up front so a mismatch is one clear line, not a deep traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # without batch; None where the model accepts any size
    dtype: torch.dtype


@dataclass
class CalibrationData:
    source: str
    inputs: list[torch.Tensor]  # one stacked tensor per model input, batch first
    synthetic: bool = False
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self)
        for i in range(0, n, batch_size):
            yield tuple(t[i : i + batch_size] for t in self.inputs)

    def take(self, n: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[:n] for t in self.inputs)

    def part(self, start: int, stop: int) -> CalibrationData:
        return CalibrationData(self.source, [t[start:stop] for t in self.inputs], self.synthetic)


def input_specs(example_inputs: tuple, names: list[str]) -> list[InputSpec]:
    names = names if len(names) == len(example_inputs) else [f"input_{i}" for i in range(len(example_inputs))]
    return [InputSpec(n, tuple(int(d) for d in t.shape[1:]), t.dtype) for n, t in zip(names, example_inputs)]


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """'imagenet' | 'none' | 'm1,m2,m3/s1,s2,s3'."""
    if text == "imagenet":
        return IMAGENET
    if text == "none":
        return None
    try:
        mean, std = text.split("/")
        m = tuple(float(v) for v in mean.split(","))
        s = tuple(float(v) for v in std.split(","))
    except ValueError:
        raise UserError(f"--normalize must be imagenet, none or 'm1,m2,m3/s1,s2,s3', got '{text}'") from None
    if len(m) != len(s) or any(v <= 0 for v in s):
        raise UserError("--normalize needs as many means as stds, and every std above 0")
    return m, s


def load_calibration(
    path: str | None, specs: list[InputSpec], samples: int, normalize: str = "imagenet", seed: int = 0
) -> CalibrationData:
    if path is None:
        return synthetic(specs, samples, seed)
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"calibration data not found: {p}")
    if p.is_dir():
        return load_image_folder(p, specs, samples, normalize)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return _from_arrays(str(p), [_np_load(p)], specs, samples)
    if suffix == ".npz":
        return _load_npz(p, specs, samples)
    if suffix in IMAGE_SUFFIXES:
        raise UserError(f"{p.name} is a single image; choose the folder that holds the calibration images")
    raise UserError(f"{p.name}: calibration data must be an image folder, a .npy or a .npz file")


def synthetic(specs: list[InputSpec], samples: int, seed: int = 0) -> CalibrationData:
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for s in specs:
        shape = (samples, *[d or 1 for d in s.shape])
        if s.dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=g, dtype=torch.float32).to(s.dtype))
        else:
            tensors.append(torch.zeros(shape, dtype=s.dtype))
    return CalibrationData("synthetic", tensors, synthetic=True)


def _np_load(p: Path):
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        raise UserError(f"{p.name} holds Python objects, which are not loaded for safety ({e})") from None
    except Exception as e:
        raise UserError(f"{p.name} cannot be read as a NumPy file: {e}") from None


def _load_npz(p: Path, specs: list[InputSpec], samples: int) -> CalibrationData:
    archive = _np_load(p)
    keys = list(archive.keys())
    if len(specs) == 1 and len(keys) == 1:
        arrays = [archive[keys[0]]]
    else:
        missing = [s.name for s in specs if s.name not in keys]
        if missing:
            raise UserError(
                f"{p.name} must hold one array per model input named {', '.join(s.name for s in specs)}; "
                f"missing {', '.join(missing)} (found {', '.join(keys) or 'nothing'})"
            )
        arrays = [archive[s.name] for s in specs]
    return _from_arrays(str(p), arrays, specs, samples)


def _from_arrays(source: str, arrays: list, specs: list[InputSpec], samples: int) -> CalibrationData:
    if len(arrays) != len(specs):
        raise UserError(
            f"the model takes {len(specs)} inputs; a .npy file holds one (use .npz with named arrays)"
        )
    counts = set()
    tensors = []
    for arr, spec in zip(arrays, specs):
        got = tuple(arr.shape[1:])
        if arr.ndim != len(spec.shape) + 1 or any(e is not None and e != g for e, g in zip(spec.shape, got)):
            raise UserError(
                f"calibration data for '{spec.name}' has shape {tuple(arr.shape)}, i.e. samples of {got}; the "
                f"model expects (N, {', '.join(str(d) for d in spec.shape)})"
            )
        want_float = spec.dtype.is_floating_point
        if want_float != np.issubdtype(arr.dtype, np.floating):
            raise UserError(
                f"calibration data for '{spec.name}' is {arr.dtype}; the model expects "
                f"{str(spec.dtype).replace('torch.', '')}"
            )
        counts.add(arr.shape[0])
        t = torch.from_numpy(np.ascontiguousarray(arr[:samples])).to(spec.dtype)
        if want_float and not (finite := torch.isfinite(t.reshape(t.shape[0], -1)).all(1)).all():
            raise UserError(
                f"calibration data for '{spec.name}' holds NaN or infinite values (sample "
                f"{int((~finite).nonzero()[0])} is the first); ranges cannot be measured from them: "
                "clean those samples or leave them out"
            )
        tensors.append(t)
    if len(counts) != 1:
        raise UserError(f"the calibration arrays hold different sample counts: {sorted(counts)}")
    if min(counts) == 0:
        raise UserError(f"{Path(source).name} holds no samples")
    return CalibrationData(source, tensors)


OUTLIER_RATIO = 50.0  # max |x| over the 99.9th percentile of |x|; ~1.4 for Gaussian data, ~1 for images


def value_warnings(calib: CalibrationData, specs: list[InputSpec]) -> list[str]:
    """Data that loads but cannot give useful ranges: a constant input, or a few extreme values that
    set the input's whole 8-bit range (one 1e6 among unit values leaves every other value on step 0)."""
    out = []
    for t, spec in zip(calib.inputs, specs):
        if not spec.dtype.is_floating_point or t.numel() == 0:
            continue
        flat = t.detach().float().flatten()
        lo, hi = float(flat.min()), float(flat.max())
        if lo == hi:
            out.append(
                f"calibration data for '{spec.name}' is constant (every value {lo:g}): ranges will not fit "
                "real inputs"
            )
            continue
        mags = flat.abs()[:: max(1, flat.numel() // 1_000_000)]
        typical = float(mags.kthvalue(max(1, int(0.999 * mags.numel()))).values)
        peak = float(flat.abs().max())
        if typical > 0 and peak > OUTLIER_RATIO * typical:
            out.append(
                f"calibration data for '{spec.name}' has extreme values (up to {peak:.3g}, while 99.9% are "
                f"within ±{typical:.3g}); the input's 8-bit range is set by them: check the data"
            )
    return out


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def image_geometry(specs: list[InputSpec]) -> tuple[int, int, int]:
    if len(specs) != 1 or len(specs[0].shape) != 3 or specs[0].shape[0] not in (1, 3):
        shapes = ", ".join(f"(N, {', '.join(str(d) for d in s.shape)})" for s in specs)
        raise UserError(
            f"an image folder needs a model that takes one image batch (N, 3, H, W); this model takes {shapes}: "
            "give a .npy or .npz file instead"
        )
    c, h, w = specs[0].shape
    return c, h or 224, w or 224


def preprocess_image(path: Path, c: int, h: int, w: int) -> np.ndarray:
    """Resize the short side, centre-crop to (h, w), scale to [0, 1]; returns CHW float32."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB" if c == 3 else "L")
        scale = max(h / im.height, w / im.width)
        size = (max(w, round(im.width * scale)), max(h, round(im.height * scale)))
        im = im.resize(size, Image.BILINEAR)
        left, top = (size[0] - w) // 2, (size[1] - h) // 2
        im = im.crop((left, top, left + w, top + h))
        arr = np.asarray(im, dtype=np.float32) / 255.0
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)


def normalise(arr: np.ndarray, norm) -> np.ndarray:
    if norm is None:
        return arr
    mean, std = norm
    c = arr.shape[-3]
    if len(mean) not in (1, c):
        raise UserError(f"normalisation has {len(mean)} channel values; the images have {c} channels")
    m = np.asarray(mean if len(mean) == c else mean * c, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std if len(std) == c else std * c, np.float32).reshape(-1, 1, 1)
    return (arr - m) / s


def load_image_folder(folder: Path, specs: list[InputSpec], samples: int, normalize: str) -> CalibrationData:
    c, h, w = image_geometry(specs)
    norm = parse_normalize(normalize)
    files = image_files(folder)
    if not files:
        raise UserError(
            f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}, searched recursively)"
        )
    arrays, skipped = [], []
    for f in files:
        if len(arrays) >= samples:
            break
        try:
            arrays.append(normalise(preprocess_image(f, c, h, w), norm))
        except Exception:
            skipped.append(str(f.relative_to(folder)))
    if not arrays:
        raise UserError(f"none of the {len(files)} images in {folder} could be read")
    batch = torch.from_numpy(np.stack(arrays)).to(specs[0].dtype)
    return CalibrationData(str(folder), [batch], skipped=skipped)


def load_labelled_folder(
    folder: str, specs: list[InputSpec], normalize: str, limit: int = 2000
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An image folder with one subfolder per class; sorted subfolder order is the output index
    unless a classes.txt beside them lists the class names in output order."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"labels folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    listed = root / "classes.txt"
    if listed.exists():
        names = [ln.strip() for ln in listed.read_text(encoding="utf-8").splitlines() if ln.strip()]
        by_suffix = {d.split("_", 1)[-1]: d for d in classes}
        classes = [by_suffix.get(n, n) for n in names if by_suffix.get(n, n) in classes] or classes
    if not classes:
        raise UserError(f"{root} must hold one subfolder of images per class")
    c, h, w = image_geometry(specs)
    norm = parse_normalize(normalize)
    xs, ys = [], []
    for idx, cls in enumerate(classes):
        for f in image_files(root / cls):
            if len(xs) >= limit:
                break
            try:
                xs.append(normalise(preprocess_image(f, c, h, w), norm))
            except Exception:
                continue
            ys.append(idx)
    if not xs:
        raise UserError(f"no readable images under {root}")
    return torch.from_numpy(np.stack(xs)).to(specs[0].dtype), torch.tensor(ys), classes

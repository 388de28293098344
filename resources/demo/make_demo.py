"""Regenerate the bundled QDQ Studio demo: synthetic shape images, a trained DemoNet and its exports.

Run from the repository root:

    .venv/bin/python resources/demo/make_demo.py

Everything is generated here from fixed seeds; nothing is downloaded. Outputs, next to this file:

    model.pt2     torch.export ExportedProgram with a symbolic batch dimension
    weights.pt    DemoNet state_dict, loaded by recipe.py
    classes.txt   class names, one per line, in output-index order
    calib/        96 unlabelled PNG images (mixed classes) for calibration
    eval/         eval/<index>_<class>/*.png, 30 labelled PNG images per class

The network itself is defined once, in recipe.py.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

HERE = Path(__file__).resolve().parent
SIZE = 64
SUPERSAMPLE = 4

TRAIN_PER_CLASS = 800
VAL_PER_CLASS = 100
CALIB_IMAGES = 96
EVAL_PER_CLASS = 30
SEED_TRAIN, SEED_VAL, SEED_CALIB, SEED_EVAL, SEED_TORCH = 1, 2, 3, 4, 0
EPOCHS = 8
BATCH = 64


def load_recipe():
    spec = importlib.util.spec_from_file_location("qdq_demo_recipe", HERE / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = load_recipe()
CLASSES = recipe.CLASSES


# ----------------------------------------------------------------------------------------------------
# Synthetic images


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _shape_mask(label: int, rng: np.random.RandomState) -> np.ndarray:
    """An anti-aliased float mask in [0, 1] of one shape with random position, size and rotation."""
    big = SIZE * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    r = rng.uniform(0.17, 0.32) * big  # "radius" of the shape
    margin = r * 1.05
    cx, cy = rng.uniform(margin, big - margin, size=2)
    name = CLASSES[label]

    def poly(points: np.ndarray, angle: float) -> None:
        pts = _rotate(points, angle) + (cx, cy)
        draw.polygon([tuple(p) for p in pts], fill=255)

    if name == "circle":
        rx = r * rng.uniform(0.9, 1.0)
        ry = r * rng.uniform(0.9, 1.0)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif name == "ring":
        inner = r * rng.uniform(0.45, 0.7)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif name == "square":
        h = r * 0.8
        poly(np.array([[-h, -h], [h, -h], [h, h], [-h, h]]), rng.uniform(0, math.pi / 2))
    elif name == "triangle":
        angles = np.array([90.0, 210.0, 330.0]) + rng.uniform(-10, 10, size=3)
        pts = np.stack([np.cos(np.radians(angles)), -np.sin(np.radians(angles))], axis=1) * r
        poly(pts, rng.uniform(0, 2 * math.pi))
    elif name == "cross":
        t = r * rng.uniform(0.25, 0.4)  # half arm thickness
        arms = [
            np.array([[-r, -t], [r, -t], [r, t], [-r, t]]),
            np.array([[-t, -r], [t, -r], [t, r], [-t, r]]),
        ]
        angle = rng.uniform(-math.pi / 6, math.pi / 6)
        for arm in arms:
            poly(arm, angle)
    elif name == "stripes":
        n = rng.randint(3, 5)  # 3 or 4 bars
        pitch = 2 * r / (2 * n - 1)
        angle = rng.uniform(-math.pi / 9, math.pi / 9)
        for i in range(n):
            y0 = -r + 2 * i * pitch
            poly(np.array([[-r, y0], [r, y0], [r, y0 + pitch], [-r, y0 + pitch]]), angle)
    else:
        raise ValueError(name)
    small = mask.resize((SIZE, SIZE), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _background(rng: np.random.RandomState) -> np.ndarray:
    """A random linear colour gradient with a few faint blobs."""
    c0 = rng.uniform(0, 255, size=3)
    c1 = np.clip(c0 + rng.uniform(-60, 60, size=3), 0, 255)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    t = (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    bg = c0 * (1 - t) + c1 * t
    for _ in range(rng.randint(0, 4)):
        bx, by = rng.uniform(0, SIZE, size=2)
        sigma = rng.uniform(3, 10)
        blob = np.exp(-((xx * (SIZE - 1) - bx) ** 2 + (yy * (SIZE - 1) - by) ** 2) / (2 * sigma**2))
        bg = bg + blob[..., None] * rng.uniform(-35, 35, size=3)
    return bg


def _contrasting_colour(bg: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    ref = bg.reshape(-1, 3)
    for _ in range(100):
        fg = rng.uniform(0, 255, size=3)
        if np.linalg.norm(ref - fg, axis=1).min() > 110:
            return fg
    # Fall back to the colour opposite the mean background colour.
    return 255.0 - ref.mean(axis=0)


def make_image(label: int, rng: np.random.RandomState) -> np.ndarray:
    """One HxWx3 uint8 image of class ``label``."""
    bg = _background(rng)
    fg = _contrasting_colour(bg, rng)
    alpha = _shape_mask(label, rng)[..., None]
    img = bg * (1 - alpha) + fg * alpha
    img = img + rng.normal(0, rng.uniform(2, 7), size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_set(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return np.stack([make_image(int(label), rng) for label in labels])


def balanced_labels(per_class: int, seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    np.random.RandomState(seed).shuffle(labels)
    return labels


# ----------------------------------------------------------------------------------------------------
# Preprocessing: exactly what the app does for an image folder (RGB, /255, ImageNet normalisation, NCHW)

MEAN = torch.tensor(recipe.IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(recipe.IMAGENET_STD).view(1, 3, 1, 1)


def preprocess(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def load_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (SIZE, SIZE):
            im = im.resize((SIZE, SIZE), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------
# Training


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return (pred == y).float().mean().item()


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(SEED_TORCH)
    steps = EPOCHS * math.ceil(len(x) / BATCH)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), BATCH):
            idx = perm[i : i + BATCH]
            xb = x[idx]
            # Cheap augmentation: random horizontal/vertical flips keep every class's identity.
            if torch.rand((), generator=gen) < 0.5:
                xb = xb.flip(3)
            if torch.rand((), generator=gen) < 0.5:
                xb = xb.flip(2)
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(
            f"  epoch {epoch + 1}/{EPOCHS}: loss {total / len(x):.4f}, "
            f"val acc {accuracy(model, xv, yv):.2%} ({time.perf_counter() - t0:.1f}s)"
        )


# ----------------------------------------------------------------------------------------------------
# Outputs


def write_pngs(images: np.ndarray, folder: Path, prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{prefix}{i:03d}.png"
        Image.fromarray(img, "RGB").save(path, optimize=True)
        paths.append(path)
    return paths


def export_model(model: nn.Module, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(model.eval(), (torch.randn(4, 3, SIZE, SIZE),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, path)


def verify_export(path: Path, model: nn.Module) -> None:
    loaded = torch.export.load(path).module()
    for n in (1, 3, 16):
        x = torch.randn(n, 3, SIZE, SIZE)
        with torch.no_grad():
            out, ref = loaded(x), model(x)
        assert out.shape == (n, len(CLASSES)), out.shape
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    print("  model.pt2 reloads and runs batch sizes 1, 3 and 16")


def main() -> int:
    torch.set_num_threads(2)
    torch.manual_seed(SEED_TORCH)
    torch.use_deterministic_algorithms(True)
    t_start = time.perf_counter()

    print("Generating images ...")
    y_train = balanced_labels(TRAIN_PER_CLASS, SEED_TRAIN)
    y_val = balanced_labels(VAL_PER_CLASS, SEED_VAL)
    x_train = make_set(y_train, SEED_TRAIN)
    x_val = make_set(y_val, SEED_VAL)
    calib = make_set(
        np.random.RandomState(SEED_CALIB + 100).randint(0, len(CLASSES), CALIB_IMAGES), SEED_CALIB
    )
    y_eval = np.repeat(np.arange(len(CLASSES)), EVAL_PER_CLASS)
    x_eval = make_set(y_eval, SEED_EVAL)
    print(f"  {len(x_train)} train, {len(x_val)} val ({time.perf_counter() - t_start:.1f}s)")

    print("Training DemoNet ...")
    model = recipe.init_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"  {n_params:,} parameters")
    xt, yt = preprocess(x_train), torch.from_numpy(y_train).long()
    xv, yv = preprocess(x_val), torch.from_numpy(y_val).long()
    train(model, xt, yt, xv, yv)
    model.eval()

    print("Writing outputs ...")
    for sub in ("calib", "eval"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    write_pngs(calib, HERE / "calib", "calib_")
    for k, name in enumerate(CLASSES):
        write_pngs(x_eval[y_eval == k], HERE / "eval" / f"{k}_{name}", f"{name}_")
    (HERE / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    torch.save(model.state_dict(), HERE / "weights.pt")
    export_model(model, HERE / "model.pt2")

    print("Verifying ...")
    verify_export(HERE / "model.pt2", model)
    rebuilt = recipe.build_model()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
    print("  recipe.build_model() reproduces the trained model")

    # Accuracy as the app measures it: reload the PNGs from eval/<index>_<class>/ in sorted folder order.
    folders = sorted(p for p in (HERE / "eval").iterdir() if p.is_dir())
    files = [(f, k) for k, d in enumerate(folders) for f in sorted(d.glob("*.png"))]
    images = np.stack([load_png(f) for f, _ in files])
    labels = torch.tensor([k for _, k in files])
    eval_model = torch.export.load(HERE / "model.pt2").module()
    with torch.no_grad():
        pred = eval_model(preprocess(images)).argmax(1)
    acc = (pred == labels).float().mean().item()
    print(
        f"  float accuracy on eval/ PNGs (model.pt2): {acc:.2%} ({int((pred == labels).sum())}/{len(labels)})"
    )
    for k, name in enumerate(CLASSES):
        sel = labels == k
        print(f"    {k}_{name:<9} {(pred[sel] == k).float().mean().item():.2%}")

    print("Sizes:")
    for name in ("model.pt2", "weights.pt", "classes.txt"):
        print(f"  {name:<12} {(HERE / name).stat().st_size / 1024:8.1f} KiB")
    for sub in ("calib", "eval"):
        pngs = list((HERE / sub).rglob("*.png"))
        print(f"  {sub + '/':<12} {sum(p.stat().st_size for p in pngs) / 1024:8.1f} KiB in {len(pngs)} PNGs")
    print(f"Done in {time.perf_counter() - t_start:.1f}s")
    if acc < 0.95:
        print(f"error: accuracy {acc:.2%} is below 95%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Thumbnails of calibration samples after preprocessing, so the user sees what the model will see.

They travel as base64 PNG bytes in the job result: files in a temp folder outlived the window (a
preview is made on every change of the data source) and nobody owned their removal.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from core.engine import calibration
from core.engine.capture import capture
from core.engine.loading import load_model


def preview(
    calib: str | None, model: str, trust_code: bool = False, normalize: str = "imagenet", count: int = 12
) -> dict:
    loaded = load_model(model, trust_code)
    cap = capture(loaded)
    specs = calibration.input_specs(cap.example_inputs, loaded.input_names)
    result = {
        "source": calib or "synthetic",
        "shape": list(specs[0].shape),
        "thumbnails": [],
        "skipped": 0,
        "total": 0,
    }
    if calib and Path(calib).is_dir():
        c, h, w = calibration.image_geometry(specs)
        calibration.parse_normalize(normalize)
        files = calibration.image_files(Path(calib))
        result["total"] = len(files)
        for f in files:
            if len(result["thumbnails"]) >= count:
                break
            try:
                arr = calibration.preprocess_image(f, c, h, w)
            except Exception:
                result["skipped"] += 1
                continue
            result["thumbnails"].append(_png_base64(arr))
        return result
    data = calibration.load_calibration(calib, specs, count, normalize)
    result["total"] = len(data)
    x = data.inputs[0]
    if x.dim() == 4 and x.shape[1] in (1, 3):
        for i in range(min(count, len(data))):
            a = x[i].float().numpy()
            a = (a - a.min()) / (a.max() - a.min() + 1e-9)
            result["thumbnails"].append(_png_base64(a))
    return result


def _png_base64(chw: np.ndarray) -> str:
    from PIL import Image

    img = (np.clip(chw, 0, 1) * 255).astype(np.uint8)
    img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")

"""Job specs and events: plain dataclasses that cross the worker boundary as JSON lines.

Protocol (one JSON object per line, UTF-8):
  parent -> worker stdin:  {"op": "job", "spec": JobSpec}   start a job (one at a time)
                           {"op": "cancel", "job_id": ...}  cooperative cancel of the running job
                           {"op": "quit"}                   exit after the running job
  worker -> parent stdout: Event objects (see `Event`), one per line; every job ends with exactly one
                           `result`, `error` or `cancelled` event. A `ready` event is sent once at start.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import UserError
from core.presets import OBSERVERS, get_preset

DEVICE_HINT = "auto, cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class QuantizeOptions:
    """Everything a quantization run needs; the CLI flags and the window's form map onto it."""

    model: str
    out_dir: str
    preset: str = "onnxruntime"
    calib: str | None = None
    samples: int = 64
    batch_size: int = 8
    device: str = "auto"
    qat_epochs: int = 0
    labels: str | None = None
    keep_float: tuple[str, ...] = ()
    observer: str | None = None  # None: the preset's default
    per_channel: bool = True
    reference_representation: bool = False
    trust_code: bool = False
    normalize: str = "imagenet"  # imagenet | none | "m1,m2,m3/s1,s2,s3"
    analyse: bool = True
    export_onnx: bool = True
    db: str | None = None

    def __post_init__(self):
        get_preset(self.preset)
        if self.observer is not None and self.observer not in OBSERVERS:
            raise UserError(f"unknown observer '{self.observer}'; choose one of: {', '.join(OBSERVERS)}")
        if self.samples < 1:
            raise UserError("--samples must be at least 1")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.qat_epochs < 0:
            raise UserError("--qat-epochs cannot be negative")
        if self.qat_epochs and not get_preset(self.preset).static:
            raise UserError(f"preset '{self.preset}' is dynamic; QAT needs a static preset")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise UserError(f"unknown device '{dev}'; use {DEVICE_HINT}")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keep_float"] = list(self.keep_float)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantizeOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


JOB_KINDS = ("quantize", "inspect", "devices", "preview", "sensitivity")


@dataclass(frozen=True)
class JobSpec:
    """Job kinds and their params / result data:

    quantize    QuantizeOptions dict -> {"run_id", "out_dir", "report"}
    inspect     {"model", "trust_code"} -> {"path", "format", "sha256", "inputs": [{"name", "shape",
                "dtype"}], "params", "ops": {op: count}, "exportable", "why", "dynamic_batch"}
    devices     {} -> {"devices": [{"id", "kind", "name", "memory_bytes"}]}
    preview     {"calib", "model", "trust_code", "normalize", "count"} -> {"total", "skipped",
                "shape", "thumbnails": [base64 PNG after preprocessing], "source"}
    sensitivity QuantizeOptions dict + {"target_sqnr_db"} -> {"baseline_sqnr_db", "ranking":
                [{"layer", "sqnr_db" (only this layer quantized), "gain_db" (output SQNR won by keeping only this
                layer in float)}] most sensitive first, "auto_keep_float": [layer names], "auto_sqnr_db", "reached"}
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self):
        if self.kind not in JOB_KINDS:
            raise UserError(f"unknown job kind '{self.kind}'")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        d = json.loads(text)
        return cls(kind=d["kind"], params=d.get("params", {}), id=d.get("id") or uuid.uuid4().hex[:12])


EVENT_TYPES = ("ready", "stage", "progress", "log", "warning", "result", "error", "cancelled")


@dataclass(frozen=True)
class Event:
    """One line of worker output.

    stage: data={"name", "index", "count"}; progress: data={"fraction" 0..1 of the whole job,
    "message", "eta_s" or None, optional "loss"}; log/warning: data={"message"}; result: data=the
    job's result (quantize: {"run_id", "out_dir", "report"}); error: data={"message", "details",
    "user_error"}; cancelled: data={"message"}; ready: data={"pid"}.
    """

    type: str
    job_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> Event:
        d = json.loads(text)
        if d.get("type") not in EVENT_TYPES:
            raise ValueError(f"not an event: {text[:80]!r}")
        return cls(type=d["type"], job_id=d.get("job_id"), data=d.get("data") or {}, ts=d.get("ts", 0.0))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)

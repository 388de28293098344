"""Preset catalogue: plain data the window and the CLI can show without importing torch.

The engine (`core.engine.quantizers`) turns an id into a torchao quantizer; this module only describes.
"""

from __future__ import annotations

from dataclasses import dataclass

OBSERVERS = ("minmax", "histogram", "moving-average")


@dataclass(frozen=True)
class PresetInfo:
    id: str
    title: str
    hardware: str
    summary: str
    changes: str
    choose_when: str
    weights: str
    activations: str
    default_observer: str
    static: bool = True  # static presets can become QAT with --qat-epochs

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


PRESETS: tuple[PresetInfo, ...] = (
    PresetInfo(
        id="onnxruntime",
        title="ONNX Runtime (CPU)",
        hardware="Any PC or server CPU running ONNX Runtime (Intel, AMD, Arm).",
        summary="The default. Produces an int8 ONNX file that ONNX Runtime runs with integer kernels.",
        changes="Weights become int8 per output channel; activations become uint8 with a measured range; "
        "every Conv, Gemm, MatMul and Add is placed so the runtime fuses it into an integer kernel, except "
        "where float is faster or 8 bits cost accuracy (the report lists each and why); the first layer of "
        "an image model is rearranged so it runs about twice as fast, with the same results.",
        choose_when="You will ship an ONNX file, or you are not sure which target to pick.",
        weights="int8 symmetric, per channel",
        activations="uint8 asymmetric, static",
        default_observer="histogram",
    ),
    PresetInfo(
        id="tensorrt",
        title="NVIDIA TensorRT",
        hardware="NVIDIA GPUs (TensorRT, Jetson).",
        summary="Symmetric int8 everywhere, in the explicit-quantization layout TensorRT expects.",
        changes="Weights int8 per channel and activations int8 with zero point 0, Q/DQ in front of each "
        "Conv, Gemm, MatMul and Add input.",
        choose_when="The deployment team builds a TensorRT engine from the ONNX file.",
        weights="int8 symmetric, per channel",
        activations="int8 symmetric (zero point 0), static",
        default_observer="histogram",
    ),
    PresetInfo(
        id="x86-inductor",
        title="PyTorch on x86 (torch.compile)",
        hardware="Intel or AMD CPUs running the model in PyTorch with torch.compile.",
        summary="torchao's X86 Inductor quantizer: the layout PyTorch's own x86 int8 kernels fuse.",
        changes="Weights int8 per channel; activations uint8, static; patterns chosen by the x86 backend.",
        choose_when="The model stays in PyTorch and runs on an x86 server.",
        weights="int8 symmetric, per channel",
        activations="uint8 asymmetric, static",
        default_observer="histogram",
    ),
    PresetInfo(
        id="x86-inductor-dynamic",
        title="PyTorch on x86, dynamic (transformers)",
        hardware="x86 CPUs; models dominated by Linear layers (transformers, MLPs).",
        summary="Weights int8 ahead of time; activation ranges measured on the fly for every input.",
        changes="Only Linear/MatMul weights are quantized; activations are quantized at run time, so "
        "no calibration range can be wrong.",
        choose_when="A transformer or an MLP whose activation ranges change a lot between inputs.",
        weights="int8 symmetric, per channel",
        activations="uint8, dynamic (per input)",
        default_observer="minmax",
        static=False,
    ),
    PresetInfo(
        id="arm-inductor",
        title="PyTorch on Arm",
        hardware="Arm CPUs (Graviton, Ampere, Apple silicon) running PyTorch.",
        summary="torchao's Arm Inductor quantizer for PyTorch's Arm int8 kernels.",
        changes="Weights int8 per channel; activations int8 asymmetric, static.",
        choose_when="The model stays in PyTorch and runs on an Arm server or laptop.",
        weights="int8 symmetric, per channel",
        activations="int8 asymmetric, static",
        default_observer="histogram",
    ),
    PresetInfo(
        id="xnnpack",
        title="Mobile (XNNPACK / ExecuTorch style)",
        hardware="Phones and embedded Arm devices.",
        summary="Symmetric int8 weights per channel and int8 activations, the layout mobile runtimes use.",
        changes="Weights int8 per channel; activations int8 asymmetric, static.",
        choose_when="The model goes to a phone or a small device.",
        weights="int8 symmetric, per channel",
        activations="int8 asymmetric, static",
        default_observer="histogram",
    ),
)

DEFAULT_PRESET = "onnxruntime"
_BY_ID = {p.id: p for p in PRESETS}


def preset_ids() -> list[str]:
    return [p.id for p in PRESETS]


def get_preset(preset_id: str) -> PresetInfo:
    from core.errors import UserError

    try:
        return _BY_ID[preset_id]
    except KeyError:
        raise UserError(f"unknown preset '{preset_id}'; choose one of: {', '.join(preset_ids())}") from None

"""Model files -> a module, example inputs and a summary; anything we cannot load safely is refused.

Only two formats run: a `.pt2` ExportedProgram and a `.py` recipe (which executes code, so it needs
explicit trust). Everything else is identified from its bytes and explained, without unpickling it.
"""

from __future__ import annotations

import importlib.util
import inspect
import operator
import sys
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import UserError
from core.fsutil import sha256_file

EXPORT_HINT = (
    "export it with torch.export.save(torch.export.export(model, example_inputs), 'model.pt2'), "
    "or write a .py recipe with build_model() and example_inputs()"
)


@dataclass
class LoadedModel:
    path: str
    format: str  # "pt2" | "py"
    sha256: str
    module: torch.nn.Module
    example_inputs: tuple
    exported: torch.export.ExportedProgram | None = None
    input_names: list[str] = field(default_factory=list)
    source_file: str | None = None  # the recipe, for pointing at lines in capture errors


def load_model(path: str, trust_code: bool = False) -> LoadedModel:
    p = Path(path).expanduser()
    _check_file(p)
    if p.suffix == ".py":
        return _load_recipe(p, trust_code)
    kind = sniff(p)
    if kind != "pt2":
        raise UserError(describe_refusal(p, kind))
    return _load_pt2(p)


def _check_file(p: Path) -> None:
    if not p.exists():
        raise UserError(f"model file not found: {p}")
    if p.is_dir():
        raise UserError(f"{p} is a folder; choose a .pt2 file or a .py recipe inside it")
    if p.stat().st_size == 0:
        raise UserError(f"{p.name} is empty (0 bytes); the file was not saved completely")


def sniff(p: Path) -> str:
    """Identify a file from its bytes: pt2, torchscript, torch-save, pickle, onnx, zip or unknown."""
    with open(p, "rb") as f:
        head = f.read(16)
    if zipfile.is_zipfile(p):
        try:
            names = zipfile.ZipFile(p).namelist()
        except (zipfile.BadZipFile, OSError):
            return "corrupt-zip"
        tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if (
            "archive_format" in tails
            or "models/model.json" in tails
            or any(t.startswith("models/") and t.endswith(".json") for t in tails)
        ):
            return "pt2"
        if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
            return "torchscript"
        if "data.pkl" in tails:
            return "torch-save"
        return "zip"
    if head[:4] == b"PK\x03\x04":
        return "corrupt-zip"  # a zip header without a readable directory: truncated or damaged
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    if p.suffix.lower() == ".onnx" or head[:2] == b"\x08\x07" or head[:1] == b"\x08":
        return "onnx"
    return "unknown"


def describe_refusal(p: Path, kind: str) -> str:
    name = p.name
    if kind == "torchscript":
        return f"{name} is a TorchScript file; QDQ Studio needs a torch.export program: {EXPORT_HINT}"
    if kind == "torch-save":
        what = _torch_save_contents(p)
        return f"{name} is {what} saved with torch.save, not a runnable model; {EXPORT_HINT}"
    if kind == "pickle":
        return (
            f"{name} is a Python pickle; it is never unpickled because that can run any code; {EXPORT_HINT}"
        )
    if kind == "onnx":
        return (
            f"{name} looks like an ONNX model; QDQ Studio quantizes PyTorch models: give the .pt2 "
            "export of the original PyTorch model"
        )
    if kind == "corrupt-zip":
        return f"{name} is a damaged archive (truncated or corrupt); save or copy it again"
    if kind == "zip":
        return f"{name} is a zip archive but not a PyTorch model; {EXPORT_HINT}"
    return f"{name} is not a model file QDQ Studio can read (expected .pt2 or .py); {EXPORT_HINT}"


def _torch_save_contents(p: Path) -> str:
    """Peek with weights_only=True, which cannot run code, to say what the file holds."""
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        return "a pickled Python object (a whole model or custom class)"
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"a state_dict (weights only, {len(obj)} tensors, no model code)"
    if isinstance(obj, dict):
        return "a checkpoint dictionary (weights and training state, no model code)"
    return "a tensor or plain data"


def _load_pt2(p: Path) -> LoadedModel:
    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{p.name} looks like a .pt2 export but cannot be read (damaged, or saved by an incompatible "
            f"torch version): {first}"
        ) from None
    example = _example_inputs_from_program(ep)
    module = program_module(ep)
    return LoadedModel(
        path=str(p),
        format="pt2",
        sha256=sha256_file(p),
        module=module,
        example_inputs=example,
        exported=ep,
        input_names=_input_names(ep, module),
    )


def _input_names(ep: torch.export.ExportedProgram, module: torch.nn.Module) -> list[str]:
    """The names in the model's forward: torch.export lowercases its placeholders, and PaiNN's
    `forward(self, Z, R)` asked for a calibration .npz holding z and r."""
    names = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    params = inspect.signature(module.forward).parameters.values()
    own = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return own if [n.lower() for n in own] == names else names


def program_module(ep: torch.export.ExportedProgram) -> torch.fx.GraphModule:
    """`ep.module()`, also for models with a submodule or buffer named like a GraphModule attribute.

    torch sets each parameter on the GraphModule by its path, and `meta` (a metadata branch beside an
    image CNN), `graph` or `code` are already taken there: "references nonexistent attribute 0 of meta".
    Such roots are renamed in the program's state first (the graph's module-stack names, which the
    report uses, stay as they are)."""
    fresh = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
    specs = [*ep.graph_signature.input_specs, *ep.graph_signature.output_specs]
    roots = {s.target.split(".")[0] for s in specs if s.target}
    for old in sorted(r for r in roots if hasattr(fresh, r)):
        new = old + "_"
        while new in roots or hasattr(fresh, new):
            new += "_"
        for spec in specs:
            if spec.target and spec.target.split(".")[0] == old:
                target = new + spec.target[len(old) :]
                for state in (ep._state_dict, ep._constants):
                    if spec.target in state:
                        state[target] = state.pop(spec.target)
                spec.target = target
    gm = ep.module()
    _inline_regions(gm)
    _flat_inputs(gm)
    _functional_view_writes(gm)
    return gm


def _functional_view_writes(gm: torch.fx.GraphModule) -> int:
    """`y[..., 0:2] = v` (YOLO's box decode) stays an in-place copy_ into a slice of y in the program.
    Once an observer stands between the slice and the copy_, the write lands in the observer's copy and
    y keeps its old values: a YOLO head read 0.1 dB, its boxes were raw sigmoids, and larger ones
    failed the ONNX checker. Each such write becomes y' = slice_scatter(y, v) (select_scatter for an
    index), which everything after it reads. Only into a slice or an index of a fresh tensor (not a
    view of another, which the write would change too) or of an input, and not while another view of
    it, taken before the write, is read after it; returns how many."""
    aten = torch.ops.aten
    scatter = {aten.slice.Tensor: aten.slice_scatter.default, aten.select.int: aten.select_scatter.default}
    done = 0
    for node in [n for n in gm.graph.nodes if n.target is aten.copy_.default]:
        view, src = node.args[:2]
        base = view.args[0] if isinstance(view, torch.fx.Node) and view.target in scatter else None
        if not (isinstance(base, torch.fx.Node) and _fresh(base)):
            continue
        order = {n: i for i, n in enumerate(gm.graph.nodes)}
        later = [u for u in (*base.users, *view.users) if order[u] > order[node]]
        views_before = [u for u in base.users if u is not view and order[u] < order[node] and not _fresh(u)]
        if any(order[w] > order[node] for v in views_before for w in v.users):
            continue  # a view taken before the write and read after it would miss the write
        with gm.graph.inserting_after(node):
            new = gm.graph.call_function(scatter[view.target], (base, src, *view.args[1:]), view.kwargs)
        with gm.graph.inserting_after(new):
            written = gm.graph.call_function(view.target, (new, *view.args[1:]), view.kwargs)
        new.meta["val"], written.meta["val"] = base.meta.get("val"), view.meta.get("val")
        for user in later:
            user.replace_input_with(base, new)
            user.replace_input_with(view, written)
        node.replace_all_uses_with(written)
        gm.graph.erase_node(node)
        done += 1
    if done:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return done


def _fresh(node: torch.fx.Node) -> bool:
    """A graph input, or an op whose output is a new tensor rather than a view of its input."""
    if node.op == "placeholder":
        return True
    schema = getattr(node.target, "_schema", None)
    return node.op == "call_function" and schema is not None and not any(r.alias_info for r in schema.returns)


# higher-order ops that wrap a region of forward in a mode -> index of the region's submodule
_REGIONS = {
    torch.ops.higher_order.wrap_with_set_grad_enabled: 1,
    torch.ops.higher_order.wrap_with_autocast: 4,
}


def _inline_regions(gm: torch.fx.GraphModule) -> None:
    """`with torch.no_grad():` or `with torch.autocast(...):` inside forward exports as a higher-order
    op around a submodule, which no quantizer looks into: a model that routed its whole body through
    one came out all float, and a bfloat16 autocast region wrote a Gemm ONNX Runtime cannot run. Grad
    mode means nothing for inference and int8 starts from float32, so each region's nodes are copied
    into the graph (outer first; nested regions come along as attributes and are inlined in the next
    round). The dtype checks torch wrote after an autocast region would now fail: they go too."""
    autocast = False
    while node := next((n for n in gm.graph.nodes if n.op == "call_function" and n.target in _REGIONS), None):
        autocast |= node.target is torch.ops.higher_order.wrap_with_autocast
        sub_node = node.args[_REGIONS[node.target]]
        sub_name = sub_node.target
        sub = getattr(gm, sub_name)
        operands = node.args[_REGIONS[node.target] + 1 :]
        env = dict(zip((n for n in sub.graph.nodes if n.op == "placeholder"), operands))
        outs: tuple = ()
        with gm.graph.inserting_before(node):
            for n in sub.graph.nodes:
                if n.op == "output":
                    outs = n.args[0]
                elif n.op == "get_attr":
                    name = f"{sub_name}_{n.target}"
                    setattr(gm, name, getattr(sub, n.target))
                    env[n] = gm.graph.get_attr(name)
                    env[n].meta = dict(n.meta)
                elif n.op != "placeholder":
                    env[n] = gm.graph.node_copy(n, env.__getitem__)
        for user in list(node.users):
            if user.target is not operator.getitem:
                raise UserError(f"cannot inline the region {sub_name} of the model")
            user.replace_all_uses_with(env.get(outs[user.args[1]], outs[user.args[1]]))
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
        gm.graph.erase_node(sub_node)
        delattr(gm, sub_name)
    if autocast:
        for n in [n for n in gm.graph.nodes if n.target is torch.ops.aten._assert_tensor_metadata.default]:
            gm.graph.erase_node(n)
    gm.graph.lint()
    gm.recompile()


def _flat_inputs(gm: torch.fx.GraphModule) -> None:
    """A program whose forward took a list or dict of tensors is called with its tensors one by one,
    like every other model here (calibration files and ONNX inputs are flat, named per tensor)."""
    info = getattr(gm.graph._codegen, "pytree_info", None)
    leaves = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    flat = torch.utils._pytree.tree_structure((tuple(leaves), {}))
    if info is None or info.in_spec == flat:
        return
    gm.graph._codegen.pytree_info = info._replace(orig_args=leaves, in_spec=flat)
    gm._in_spec = flat
    gm.recompile()


def _example_inputs_from_program(ep) -> tuple:
    """Saved example inputs if present, else random tensors shaped like the placeholders (batch 2)."""
    saved = getattr(ep, "example_inputs", None)
    if saved and saved[0] and all(isinstance(t, torch.Tensor) for t in saved[0]):
        args = tuple(saved[0])
        if all(t.dim() > 0 for t in args):
            return args
    user = {s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    out = []
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor):
                raise UserError("the program takes a non-tensor input; only tensor inputs are supported")
            shape = [d if isinstance(d, int) else 2 for d in val.shape]
            if val.dtype.is_floating_point:
                out.append(torch.randn(shape, dtype=val.dtype))
            else:
                out.append(torch.zeros(shape, dtype=val.dtype))
    return tuple(out)


def _load_recipe(p: Path, trust_code: bool) -> LoadedModel:
    if not trust_code:
        raise UserError(
            f"{p.name} is a Python recipe and loading it runs its code; pass --trust-code (or confirm in "
            "the window) only if you trust this file"
        )
    spec = importlib.util.spec_from_file_location(f"qdq_recipe_{abs(hash(str(p)))}", p)
    if spec is None or spec.loader is None:
        raise UserError(f"{p.name} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(p.parent))
    try:
        spec.loader.exec_module(module)
        for fn in ("build_model", "example_inputs"):
            if not callable(getattr(module, fn, None)):
                raise UserError(
                    f"{p.name} must define {fn}(); see the recipe example in resources/demo/recipe.py"
                )
        model = module.build_model()
        example = module.example_inputs()
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{p.name} failed while building the model: {_where(e, p)}") from e
    finally:
        sys.path.remove(str(p.parent))
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"build_model() in {p.name} returned {type(model).__name__}, not a torch.nn.Module")
    if isinstance(example, torch.Tensor):
        example = (example,)
    if not isinstance(example, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in example):
        raise UserError(f"example_inputs() in {p.name} must return a tuple of tensors")
    names = [f"input_{i}" for i in range(len(example))] if len(example) > 1 else ["input"]
    return LoadedModel(
        path=str(p),
        format="py",
        sha256=sha256_file(p),
        module=model.eval(),
        example_inputs=tuple(example),
        input_names=names,
        source_file=str(p),
    )


def _where(e: BaseException, src: Path) -> str:
    """The exception message plus the recipe line that raised it."""
    msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == src]
    if frames:
        f = frames[-1]
        msg += f" (at {src.name}:{f.lineno}: {(f.line or '').strip()})"
    return msg

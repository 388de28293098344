"""Quantization-aware fine-tuning: distil the float model into the fake-quantized one.

Cross-entropy replaces distillation when a labelled image folder is given. Batch-norm statistics stay
frozen: calibration sets are small, and batch statistics from a few samples would hurt more than help.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.engine.analysis import flat_outputs
from core.progress import Progress


def _loss(student_out, teacher_out, labels):
    if labels is not None:
        return F.cross_entropy(student_out, labels)
    if isinstance(student_out, torch.Tensor) and student_out.dim() == 2 and student_out.shape[1] > 1:
        return F.kl_div(F.log_softmax(student_out, 1), F.softmax(teacher_out, 1), reduction="batchmean")
    leaves = [t for t in torch.utils._pytree.tree_leaves(student_out) if isinstance(t, torch.Tensor)]
    student = torch.cat([t.float().flatten() for t in leaves])
    return F.mse_loss(student, flat_outputs(teacher_out))


def _trainable_weights(gm: torch.fx.GraphModule) -> list[torch.nn.Parameter]:
    """Constants that feed conv/linear (folded conv-BN weights are plain tensors) become Parameters."""
    params = []
    for node in gm.graph.nodes:
        if node.op != "get_attr":
            continue
        owner_path, _, name = node.target.rpartition(".")
        owner = gm.get_submodule(owner_path) if owner_path else gm
        value = getattr(owner, name)
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        if not isinstance(value, torch.nn.Parameter):
            if name in owner._buffers:
                del owner._buffers[name]
            value = torch.nn.Parameter(value.detach().clone())
            setattr(owner, name, value)
        params.append(value)
    return params


def fine_tune(student, teacher, calib, labelled, epochs: int, batch_size: int, device, p: Progress) -> dict:
    teacher = teacher.to(device)
    params = _trainable_weights(student)
    for t in params:
        t.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-5)
    if labelled is not None:
        xs, ys, _ = labelled
        data = [((xs[i : i + batch_size],), ys[i : i + batch_size]) for i in range(0, len(xs), batch_size)]
    else:
        data = [(b, None) for b in calib.batches(batch_size)]
    steps, done, losses = epochs * len(data), 0, []
    for epoch in range(epochs):
        total = 0.0
        for inputs, labels in data:
            inputs = tuple(t.to(device) for t in inputs)
            with torch.no_grad():
                target = teacher(*inputs)
            loss = _loss(student(*inputs), target, labels.to(device) if labels is not None else None)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = loss.item()
            total += value
            done += 1
            p(done / steps, f"epoch {epoch + 1}/{epochs}, loss {value:.4f}", loss=value)
        losses.append(round(total / max(1, len(data)), 6))
    teacher.to("cpu")
    for t in params:
        t.requires_grad_(False)
    return {
        "epochs": epochs,
        "losses": losses,
        "loss": "cross-entropy" if labelled is not None else "distillation",
    }

"""The headless quantization engine: the only package that imports torch, torchao, onnx, onnxruntime.

Importing it quietens torchao's optional-kernel load messages and torch's export chatter, which mean
nothing to a user of the app.
"""

import logging as _logging
import warnings as _warnings

_warnings.filterwarnings("ignore", category=FutureWarning)
_logging.getLogger("torchao").setLevel(_logging.ERROR)  # before torchao's import prints kernel-load failures

import torch as _torch  # noqa: E402  (torch configures its loggers on import; quieten them after)

for _name in ("torch.utils._pytree", "torch.onnx", "torch._export", "torch.export", "onnxscript"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
_warnings.filterwarnings("ignore", module=r"torch\..*")
_warnings.filterwarnings("ignore", module=r"torchao\..*")
_warnings.filterwarnings("ignore", module=r"onnxscript\..*")

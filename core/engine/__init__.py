"""The headless quantization engine: the only package that imports torch, torchao, onnx, onnxruntime.

Importing it quietens torchao's optional-kernel load messages and torch's export chatter, which mean
nothing to a user of the app.
"""

import logging as _logging
import warnings as _warnings

_warnings.filterwarnings("ignore", category=FutureWarning)
_logging.getLogger("torchao").setLevel(_logging.ERROR)  # before torchao's import prints kernel-load failures

import torch as _torch  # noqa: E402,F401,I001  (torch configures its loggers on import; quieten them after)

import torch.fx.experimental.symbolic_shapes  # noqa: E402,F401  (registers the loggers silenced below)

for _name in list(_logging.root.manager.loggerDict):
    if _name.split(".")[0] in ("torch", "torchao", "onnxscript"):
        _logging.getLogger(_name).setLevel(_logging.CRITICAL)  # failures reach the user as exceptions
_warnings.filterwarnings("ignore", module=r"torch\..*")
_warnings.filterwarnings("ignore", module=r"torchao\..*")
_warnings.filterwarnings("ignore", module=r"onnxscript\..*")

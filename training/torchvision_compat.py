"""Import torchvision on machines whose torchvision wheel is a CUDA build beside a CPU-only torch.

There, `import torchvision` fails with "operator torchvision::nms does not exist" because its native
ops library cannot load. Declaring the two op schemas it registers Python fallbacks for lets models,
transforms and datasets import (torchvision.ops and torchvision.io stay unusable; we never use them).
Where torchvision loads normally this does nothing.
"""

from __future__ import annotations

_library = None  # kept alive: dropping the Library object would unregister the schemas


def import_torchvision():
    global _library
    try:
        import torchvision
        return torchvision
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
    import sys

    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the failed import leaves half-initialised modules behind
    _library = torch.library.Library("torchvision", "FRAGMENT")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    return torchvision

"""The three architectures. Each returns one logit per image; `ProbabilityModel` adds the sigmoid for export.

`mobilenetv2` is split for staged transfer learning: `frozen_part` (ImageNet features, never trained) and
`trainable_part` (the last blocks and the head), so the frozen activations can be computed once and cached.
`cnn` has the same split for retraining from a --base (its first four blocks frozen): a replay memory then
stores the input of the trainable part (`pooled_features` turns it into the graph's `features` output).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from crackdesk.core.errors import CrackDeskError
from crackdesk.core.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

ARCHS = ("cnn", "seed-cnn", "mobilenetv2")
DEFAULT_INPUT = {"cnn": 96, "seed-cnn": 256, "mobilenetv2": 160}
# The CNN learns from scratch; ccic's own channel statistics (measured on 560 images of its training
# split, seed 0) centre its inputs.
CNN_MEAN = (0.581, 0.581, 0.581)
CNN_STD = (0.169, 0.152, 0.136)
MOBILENET_FIRST_TRAINABLE = 14  # blocks 14..18 (the 160- and 320-channel stages and the last 1x1 conv)
CNN_FIRST_TRAINABLE = 7  # features[7:]: the last two 128-channel blocks (the input: 96 x 6 x 6 at 96 px)
WEIGHTS_ENV = "CRACKDESK_MOBILENET_WEIGHTS"


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CrackCNN(nn.Module):
    """Six conv blocks (BN + ReLU), downsampling by stride and pooling, global average pooling, one logit.
    About 0.34 M parameters and ~40 M multiply-adds at 96x96: hairline cracks survive the downsampling because the
    first block keeps full resolution for its 3x3 filters before striding."""

    def __init__(self, width: int = 32, first_trainable: int = CNN_FIRST_TRAINABLE):
        super().__init__()
        w = width
        self.first_trainable = first_trainable
        self.features = nn.Sequential(
            conv_block(3, w // 2, stride=2),      # /2
            conv_block(w // 2, w), nn.MaxPool2d(2),  # /4
            conv_block(w, 2 * w), nn.MaxPool2d(2),   # /8
            conv_block(2 * w, 3 * w), nn.MaxPool2d(2),  # /16
            conv_block(3 * w, 4 * w),
            conv_block(4 * w, 4 * w),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, 1))

    def forward(self, x):
        return self.head(self.features(x))

    def frozen_part(self) -> nn.Module:
        return self.features[: self.first_trainable]

    def trainable_part(self) -> nn.Module:
        return nn.Sequential(self.features[self.first_trainable:], self.head)

    def pooled_features(self, activations: torch.Tensor) -> torch.Tensor:
        """The graph's `features` output (the final layer's input) from the frozen part's output."""
        return self.head[:-1](self.features[self.first_trainable:](activations))

    @property
    def final_layer(self) -> nn.Linear:
        return self.head[-1]


class SeedCNN(nn.Module):
    """The reference Keras layout (for comparison): Conv 16/32/32 3x3 + max-pooling, dropout 0.1 and 0.3,
    Flatten, Dense 256, one output. 7.4 M parameters at 256x256, nearly all in the dense layer."""

    def __init__(self, size: int = 256):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.1),
        )
        side = (((size - 2) // 2 - 2) // 2 - 2) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, 256), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(256, 1))

    def forward(self, x):
        return self.head(self.features(x))


class MobileNetCrack(nn.Module):
    def __init__(self, first_trainable: int = MOBILENET_FIRST_TRAINABLE):
        super().__init__()
        from training.torchvision_compat import import_torchvision

        tv = import_torchvision()
        net = tv.models.mobilenet_v2()
        self.features = net.features
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1))
        self.first_trainable = first_trainable

    def frozen_part(self) -> nn.Module:
        return self.features[: self.first_trainable]

    def trainable_part(self) -> nn.Module:
        return nn.Sequential(self.features[self.first_trainable:], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             self.classifier)

    def forward(self, x):
        return self.trainable_part()(self.frozen_part()(x))

    def pooled_features(self, activations: torch.Tensor) -> torch.Tensor:
        """The graph's `features` output (the final layer's input) from the frozen part's output."""
        x = self.features[self.first_trainable:](activations)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)

    @property
    def final_layer(self) -> nn.Linear:
        return self.classifier[-1]


def is_staged(model: nn.Module) -> bool:
    """Whether the model splits into a frozen part and a trainable part (see the module docstring)."""
    return hasattr(model, "frozen_part") and hasattr(model, "pooled_features")


class ProbabilityModel(nn.Module):
    """What is exported: input `image`, output `p_crack` = sigmoid(logit), shape [N, 1]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image):
        return torch.sigmoid(self.model(image))


def default_preprocessing(arch: str, input_size: int | None) -> Preprocessing:
    side = input_size or DEFAULT_INPUT[arch]
    if arch == "mobilenetv2":
        return Preprocessing((side, side), IMAGENET_MEAN, IMAGENET_STD)
    return Preprocessing((side, side), CNN_MEAN, CNN_STD)


def build(arch: str, input_size: int) -> nn.Module:
    if arch == "cnn":
        return CrackCNN()
    if arch == "seed-cnn":
        return SeedCNN(input_size)
    if arch == "mobilenetv2":
        return MobileNetCrack()
    raise ValueError(f"unknown architecture {arch!r}")


def load_imagenet_weights(model: MobileNetCrack, weights: str | None) -> str:
    """Backbone weights from --weights, the environment variable, or torchvision's own download.
    Returns where they came from (recorded in the model's training summary)."""
    path = weights or os.environ.get(WEIGHTS_ENV)
    if path:
        p = Path(path)
        if not p.is_file():
            raise CrackDeskError("ImageNet weights file not found", p)
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CrackDeskError(f"not a PyTorch state dict ({str(e).splitlines()[0][:200]})", p) from None
        origin = str(p)
    else:
        from training.torchvision_compat import import_torchvision

        tv = import_torchvision()
        try:
            state = tv.models.MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as e:
            raise CrackDeskError(
                f"could not download MobileNetV2 ImageNet weights ({type(e).__name__}); pass --weights FILE or set "
                f"{WEIGHTS_ENV} to a local mobilenet_v2 state dict (.pth)") from None
        origin = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1"
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    try:
        model.features.load_state_dict(features, strict=True)
    except RuntimeError as e:
        raise CrackDeskError(f"weights do not fit torchvision's mobilenet_v2 ({str(e).splitlines()[0][:200]})",
                             path) from None
    return origin


def set_bn_eval(module: nn.Module) -> None:
    """BatchNorm keeps its statistics frozen while fine-tuning (see ../shared/weights/README.md)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()

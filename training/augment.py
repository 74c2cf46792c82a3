"""Augmentation for concrete photos, on batches of cached uint8 images (NHWC), before normalisation.

Cracks have no preferred orientation and surfaces no preferred lighting: flips, 90-degree rotations,
brightness/contrast changes, mild blur (focus) and sensor noise. No crops or scale changes: the patch scale
is what the heatmap relies on."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from crackdesk.core.preprocess import Preprocessing


def augment(batch_uint8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """NHWC uint8 -> NHWC float in 0..1, each image randomly transformed. Images must be square."""
    x = batch_uint8.float().div_(255.0)
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x[flip] = x[flip].flip(2)
    turns = torch.randint(0, 4, (n,), generator=gen)
    for k in (1, 2, 3):
        sel = turns == k
        if sel.any():
            x[sel] = torch.rot90(x[sel], k, dims=(1, 2))
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    brightness = 0.16 * torch.rand(n, 1, 1, 1, generator=gen) - 0.08
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + brightness
    blur = torch.rand(n, generator=gen) < 0.15
    if blur.any():
        x[blur] = _blur(x[blur])
    noisy = torch.rand(n, generator=gen) < 0.3
    if noisy.any():
        sigma = 0.02 * torch.rand(int(noisy.sum()), 1, 1, 1, generator=gen)
        x[noisy] = x[noisy] + sigma * torch.randn(x[noisy].shape, generator=gen)
    return x.clamp_(0.0, 1.0)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian (sigma ~0.8) per channel on NHWC."""
    k = torch.tensor([0.25, 0.5, 0.25])
    kernel = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    nchw = x.permute(0, 3, 1, 2)
    out = F.conv2d(F.pad(nchw, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    return out.permute(0, 2, 3, 1)


def normalize(x01_nhwc: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """The same arithmetic as Preprocessing.normalize, on a torch batch in 0..1: NCHW float32."""
    mean = torch.tensor(prep.mean, dtype=torch.float32)
    std = torch.tensor(prep.std, dtype=torch.float32)
    return ((x01_nhwc - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def augmented_uint8(batch_uint8: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """An augmented copy as uint8 (for views cached before a frozen backbone)."""
    x = augment(torch.from_numpy(batch_uint8), gen)
    return x.mul_(255.0).round_().to(torch.uint8).numpy()


def normalize_numpy(batch_uint8: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Preprocessing.normalize's arithmetic with torch's threads (4x faster on big batches); for
    training-time caches only: reported metrics always go through Preprocessing.normalize itself."""
    x = torch.from_numpy(batch_uint8).float().mul_(1.0 / 255.0)
    x.sub_(torch.tensor(prep.mean, dtype=torch.float32)).div_(torch.tensor(prep.std, dtype=torch.float32))
    return x.permute(0, 3, 1, 2).contiguous().numpy()

"""DenseNet-B encoder shared by both decoders: image (B,1,H,W) -> features (B,684,H/16,W/16).

Padding never changes a result: images are padded to a multiple of 16 and every tensor
that a spatial operation (3x3 convolution, pooling) reads is multiplied by the image
mask at its resolution, so what lies outside an image never leaks into it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 16  # stem conv (2) * max-pool (2) * two transitions (2 * 2)


@dataclass
class EncoderConfig:
    """DenseNet-B sizes; the defaults are the official ones (D = 684 output channels)."""

    growth_rate: int = 24
    num_blocks: int = 3
    layers_per_block: int = 16
    bottleneck_factor: int = 4  # bottleneck width = factor * growth rate
    reduction: float = 0.5  # transition keeps floor(C * reduction) channels
    dropout: float = 0.2
    in_channels: int = 1

    @property
    def out_channels(self) -> int:
        channels = 2 * self.growth_rate
        for block in range(self.num_blocks):
            channels += self.layers_per_block * self.growth_rate
            if block < self.num_blocks - 1:
                channels = int(channels * self.reduction)
        return channels


class MaskedDropout(nn.Module):
    """Element-wise dropout (as nn.Dropout) fused with the image mask: x * keep * mask / (1-p).

    torch's CPU Bernoulli sampler draws one number per element and was 15% of a training
    step here; one 64-bit draw gives four 16-bit uniforms, about 3x faster (`random_words`
    says where the draws come from). The keep mask
    is laid out like x (channels_last or not) and combined with the image mask, so each
    call is a single multiply of x forward and backward. The drop probability is rounded to a
    multiple of 1/65536 (0.2 becomes 0.19999695).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536) - 32768  # keep where the int16 draw >= threshold

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B,C,H,W); mask (B,1,H,W) of 0/1 or None."""
        if not self.training or self.p == 0:
            return x if mask is None else x * mask.to(x.dtype)
        # Casts and multiplies, not torch.where or `&`: their CPU kernels are not vectorised
        # for these mixed types and took 3x longer than the whole chain below. For the same
        # reason the bool mask is cast by way of int8 (bool -> bf16 directly is 4x slower).
        multiplier = self._keep_like(x).view(torch.int8).to(x.dtype)
        scale = 1.0 / (1.0 - self.p)
        if mask is None:
            return x * multiplier.mul_(scale)
        return x * multiplier.mul_(mask.to(x.dtype) * scale)

    def _keep_like(self, x: torch.Tensor) -> torch.Tensor:
        count = x.numel()
        bits = random_words((count + 3) // 4, x.device)
        keep = bits.view(torch.int16)[:count] >= self.threshold
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape
            return keep.view(b, h, w, c).permute(0, 3, 1, 2)
        return keep.view(x.shape)


def random_words(count: int, device: torch.device) -> torch.Tensor:
    """count uniformly random int64 words on device, drawn through torch's generator state.

    On the CPU, torch's generator (a Mersenne Twister) is serial and was 6% of a training
    step; NumPy's SFC64, seeded with one draw from torch's generator, fills the words 2.3x
    faster. Seeding from torch keeps runs reproducible from torch.manual_seed and resumable
    from a checkpoint's saved torch RNG state.
    """
    if device.type != "cpu":
        return torch.randint(-(2**63), 2**63 - 1, (count,), dtype=torch.int64, device=device)
    seed = int(torch.randint(0, 2**63 - 1, ()))
    return torch.from_numpy(np.random.SFC64(seed).random_raw(count).view(np.int64))


def downsample_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Mask (B,H,W) at 1/factor resolution: a cell is real if its top-left pixel is."""
    return mask[:, ::factor, ::factor]


class BottleneckLayer(nn.Module):
    """conv1x1 -> BN -> ReLU -> dropout -> conv3x3 -> BN -> ReLU -> dropout, concatenated to the input."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_factor: int, dropout: float):
        super().__init__()
        width = bottleneck_factor * growth_rate
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(growth_rate)
        self.dropout = MaskedDropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        bottleneck = self.dropout(F.relu(self.norm1(self.conv1(x))), mask)
        new_features = self.dropout(F.relu(self.norm2(self.conv2(bottleneck))))
        return torch.cat([x, new_features], dim=1)


class Transition(nn.Module):
    """conv1x1 (halve channels) -> BN -> ReLU -> dropout -> 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.dropout = MaskedDropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.relu(self.norm1(self.conv1(x))), mask)
        return F.avg_pool2d(x, kernel_size=2, ceil_mode=True)


class DenseBlock(nn.Module):
    """A stack of bottleneck layers, each adding growth_rate channels."""

    def __init__(self, in_channels: int, config: EncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            BottleneckLayer(in_channels + i * config.growth_rate, config.growth_rate,
                            config.bottleneck_factor, config.dropout)
            for i in range(config.layers_per_block)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


class DenseNetEncoder(nn.Module):
    """DenseNet-B: 7x7/2 stem conv, max-pool, dense blocks separated by transitions."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        channels = 2 * config.growth_rate
        self.stem = nn.Conv2d(config.in_channels, channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for block in range(config.num_blocks):
            self.blocks.append(DenseBlock(channels, config))
            channels += config.layers_per_block * config.growth_rate
            if block < config.num_blocks - 1:
                reduced = int(channels * config.reduction)
                self.transitions.append(Transition(channels, reduced, config.dropout))
                channels = reduced
        self.out_channels = channels

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B,1,H,W) with H, W multiples of 16; image_mask (B,H,W) -> features, feature mask."""
        if images.shape[-2] % STRIDE or images.shape[-1] % STRIDE:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of {STRIDE}; "
                             "use abm_lib.data.collate_images to pad a batch")
        mask = image_mask.to(images.dtype).unsqueeze(1)  # (B,1,H,W)
        x = F.relu(self.stem(images))
        x = x * downsample_mask(mask[:, 0], 2).unsqueeze(1).to(x.dtype)
        x = F.max_pool2d(x, kernel_size=2, ceil_mode=True)
        factor = 4
        for block_index, block in enumerate(self.blocks):
            level_mask = downsample_mask(mask[:, 0], factor).unsqueeze(1)
            x = block(x, level_mask)
            if block_index < len(self.transitions):
                x = self.transitions[block_index](x, level_mask)
                factor *= 2
        feature_mask = downsample_mask(image_mask, STRIDE)
        return x * feature_mask.unsqueeze(1).to(x.dtype), feature_mask

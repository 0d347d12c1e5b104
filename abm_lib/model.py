"""ABM: one DenseNet encoder shared by a left-to-right and a right-to-left decoder.

The forward pass returns logits and attention maps per direction; losses live in
loss.py and decoding in decoding.py. Only the L2R branch is used at inference.

Parameter counts (official configuration, trainable): 8,428,988 in all and 5,704,138
for the inference part (encoder + L2R), identical to the official code's, because the
GRUs carry biases exactly where the official ones do (see GatedRecurrentUnit); a
torch.nn.GRUCell would add 2 x 768 biases per decoder. BatchNorm running statistics
are buffers, not parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .decoder import AttentionGRUDecoder, DecoderConfig
from .encoder import DenseNetEncoder, EncoderConfig

DIRECTIONS = ("l2r", "r2l")


@dataclass
class ABMConfig:
    """The whole network; `directions=("l2r",)` is the single-decoder (DWAP-style) ablation."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    directions: tuple[str, ...] = DIRECTIONS

    def __post_init__(self) -> None:
        if "l2r" not in self.directions or not set(self.directions) <= set(DIRECTIONS):
            raise ValueError(f"directions must be ('l2r',) or ('l2r', 'r2l'), got {self.directions}")


class ABM(nn.Module):
    """Encoder + decoders; forward(images, mask, {direction: input_ids}) -> {direction: (logits, attention)}."""

    def __init__(self, config: ABMConfig = ABMConfig()):
        super().__init__()
        self.config = config
        self.encoder = DenseNetEncoder(config.encoder)
        self.decoders = nn.ModuleDict(
            {d: AttentionGRUDecoder(self.encoder.out_channels, config.decoder) for d in config.directions}
        )
        initialize_weights(self)

    def encode(self, images: torch.Tensor, image_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(images, image_mask)

    def forward(self, images: torch.Tensor, image_mask: torch.Tensor, decoder_inputs: dict[str, torch.Tensor],
                steps: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """steps (B,), optional: real decoder positions per image (label length + 1), see the decoder."""
        features, feature_mask = self.encode(images, image_mask)
        return {d: self.decoders[d](features, feature_mask, ids, steps) for d, ids in decoder_inputs.items()}


def initialize_weights(model: ABM) -> None:
    """Official scheme: Kaiming-uniform weights and zero biases, Xavier for the R2L decoder."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            init = nn.init.xavier_uniform_ if name.startswith("decoders.r2l") else nn.init.kaiming_uniform_
            init(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def inference_parameters(model: ABM) -> int:
    """Parameters used at inference: the encoder and the L2R decoder."""
    return count_parameters(model.encoder) + count_parameters(model.decoders["l2r"])

"""Convert between the official XH-B/ABM state dict and this library's, in both directions.

The official model (encoder_decoder.py) names its layers after the WAP equations; ours name
what the layers do. Everything maps one to one except the GRU gates, which the official
code keeps as three linear layers each and we keep fused, rows in the order r, z, n:

    official                                ours
    encoder1.conv1                          encoder.stem
    encoder1.dense{b}.{i}.conv1 / bn1       encoder.blocks.{b-1}.layers.{i}.conv1 / norm1
    encoder1.dense{b}.{i}.conv2 / bn2       encoder.blocks.{b-1}.layers.{i}.conv2 / norm2
    encoder1.trans{t}.conv1 / bn1           encoder.transitions.{t-1}.conv1 / norm1
    init_GRU_model.fc                       decoders.l2r.init_projection
    emb_model.embedding                     decoders.l2r.embedding
    gru_model.conv_Ua / fc_Wa / fc_va       decoders.l2r.attention.feature_projection / hidden_projection / energy
    gru_model.conv_Q, conv_Q2               decoders.l2r.attention.coverage_convs.0, .1
    gru_model.fc_Uf, fc_Uf2                 decoders.l2r.attention.coverage_projections.0, .1
    gru_model.fc_Wyr, fc_Wyz, fc_Wyh        decoders.l2r.gru_input.input_projection     (rows r, z, n)
    gru_model.fc_Uhr, fc_Uhz, fc_Uhh        decoders.l2r.gru_input.hidden_projection
    gru_model.fc_Wcr, fc_Wcz, fc_Wch        decoders.l2r.gru_context.input_projection
    gru_model.fc_Uhr2, fc_Uhz2, fc_Uhh2     decoders.l2r.gru_context.hidden_projection
    gru_prob_model.fc_Wct / fc_Wht / fc_Wyt decoders.l2r.readout_context / readout_hidden / readout_embedding
    gru_prob_model.fc_W0                    decoders.l2r.classifier
    (the same names with suffix 2: init_GRU_model2, emb_model2, gru_model2, gru_prob_model2 -> decoders.r2l)

BatchNorm running statistics and `num_batches_tracked` go along with their layer. Fusing is
a concatenation and splitting a slicing, so ours -> official -> ours (and the reverse)
returns every tensor bit for bit; tests/test_official.py checks it on the official key
list and checks one decoder step against the official equations.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .checkpoint import CheckpointError, atomic_save, read_checkpoint
from .decoder import DecoderConfig
from .encoder import EncoderConfig
from .model import ABM, ABMConfig

OFFICIAL_SUFFIX = {"l2r": "", "r2l": "2"}  # our decoder -> suffix of its official modules
DATA_PARALLEL_PREFIX = "module."

# Our decoder module -> (official top-level module, official layer); the suffix goes after the top level.
_DECODER_LAYERS = {
    "init_projection": ("init_GRU_model", "fc"),
    "embedding": ("emb_model", "embedding"),
    "attention.feature_projection": ("gru_model", "conv_Ua"),
    "attention.hidden_projection": ("gru_model", "fc_Wa"),
    "attention.coverage_convs.0": ("gru_model", "conv_Q"),
    "attention.coverage_convs.1": ("gru_model", "conv_Q2"),
    "attention.coverage_projections.0": ("gru_model", "fc_Uf"),
    "attention.coverage_projections.1": ("gru_model", "fc_Uf2"),
    "attention.energy": ("gru_model", "fc_va"),
    "readout_context": ("gru_prob_model", "fc_Wct"),
    "readout_hidden": ("gru_prob_model", "fc_Wht"),
    "readout_embedding": ("gru_prob_model", "fc_Wyt"),
    "classifier": ("gru_prob_model", "fc_W0"),
}
# Our fused GRU projections -> the official gate layers (all in gru_model), in our row order r, z, n.
_GRU_GATES = {
    "gru_input.input_projection": ("fc_Wyr", "fc_Wyz", "fc_Wyh"),
    "gru_input.hidden_projection": ("fc_Uhr", "fc_Uhz", "fc_Uhh"),
    "gru_context.input_projection": ("fc_Wcr", "fc_Wcz", "fc_Wch"),
    "gru_context.hidden_projection": ("fc_Uhr2", "fc_Uhz2", "fc_Uhh2"),
}
_LAYER_TO_OURS = {value: key for key, value in _DECODER_LAYERS.items()}
_GATE_TO_OURS = {gate: (fused, row) for fused, gates in _GRU_GATES.items() for row, gate in enumerate(gates)}
_ENCODER_PARTS = {"conv1": "conv1", "conv2": "conv2", "norm1": "bn1", "norm2": "bn2"}  # ours -> official
_ENCODER_PARTS_TO_OURS = {value: key for key, value in _ENCODER_PARTS.items()}
_OFFICIAL_DECODER = re.compile(r"(init_GRU_model|emb_model|gru_model|gru_prob_model)(2?)\.(\w+)")


def strip_data_parallel_prefix(state: dict) -> dict:
    """Remove the `module.` that torch.nn.DataParallel adds to every key (if all keys have it)."""
    if state and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state.items()}
    return dict(state)


def _official_encoder_module(module: str) -> str | None:
    """Our encoder module path -> the official one (None if it is not an encoder module)."""
    if module == "encoder.stem":
        return "encoder1.conv1"
    if match := re.fullmatch(r"encoder\.blocks\.(\d+)\.layers\.(\d+)\.(\w+)", module):
        block, layer, part = match.groups()
        return f"encoder1.dense{int(block) + 1}.{layer}.{_ENCODER_PARTS[part]}"
    if match := re.fullmatch(r"encoder\.transitions\.(\d+)\.(\w+)", module):
        transition, part = match.groups()
        return f"encoder1.trans{int(transition) + 1}.{_ENCODER_PARTS[part]}"
    return None


def _our_encoder_module(module: str) -> str | None:
    """Official encoder module path -> ours (None if it is not an encoder module)."""
    if module == "encoder1.conv1":
        return "encoder.stem"
    if match := re.fullmatch(r"encoder1\.dense(\d+)\.(\d+)\.(bn1|bn2|conv1|conv2)", module):
        block, layer, part = match.groups()
        return f"encoder.blocks.{int(block) - 1}.layers.{layer}.{_ENCODER_PARTS_TO_OURS[part]}"
    if match := re.fullmatch(r"encoder1\.trans(\d+)\.(bn1|conv1)", module):
        transition, part = match.groups()
        return f"encoder.transitions.{int(transition) - 1}.{_ENCODER_PARTS_TO_OURS[part]}"
    return None


def to_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> the official one (same tensors; fused GRU gates split into three layers)."""
    official = {}
    for key, tensor in state.items():
        module, parameter = key.rsplit(".", 1)
        if module.startswith("encoder."):
            name = _official_encoder_module(module)
            if name is None:
                raise CheckpointError(f"{key}: no official counterpart for this encoder layer")
            official[f"{name}.{parameter}"] = tensor
            continue
        match = re.fullmatch(r"decoders\.(l2r|r2l)\.(.+)", module)
        if match is None:
            raise CheckpointError(f"{key}: not a key of this library's ABM model")
        direction, layer = match.groups()
        suffix = OFFICIAL_SUFFIX[direction]
        if layer in _GRU_GATES:
            for gate, rows in zip(_GRU_GATES[layer], tensor.chunk(3, dim=0)):
                official[f"gru_model{suffix}.{gate}.{parameter}"] = rows.clone()
        elif layer in _DECODER_LAYERS:
            top, name = _DECODER_LAYERS[layer]
            official[f"{top}{suffix}.{name}.{parameter}"] = tensor
        else:
            raise CheckpointError(f"{key}: no official counterpart (the official model has two coverage "
                                  "kernels at most and no other layers)")
    return official


def from_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official state dict (L2R only or L2R + R2L, `module.` prefix allowed) -> ours."""
    state = strip_data_parallel_prefix(state)
    ours: dict[str, torch.Tensor] = {}
    gates: dict[str, dict[int, torch.Tensor]] = {}  # our fused key -> gate row block -> tensor
    unknown = []
    for key, tensor in state.items():
        module, parameter = key.rsplit(".", 1) if "." in key else (key, "")
        name = _our_encoder_module(module)
        if name is not None:
            ours[f"{name}.{parameter}"] = tensor
            continue
        match = _OFFICIAL_DECODER.fullmatch(module)
        direction = "r2l" if match and match.group(2) else "l2r"
        if match and (match.group(1), match.group(3)) in _LAYER_TO_OURS:
            ours[f"decoders.{direction}.{_LAYER_TO_OURS[match.group(1), match.group(3)]}.{parameter}"] = tensor
        elif match and match.group(1) == "gru_model" and match.group(3) in _GATE_TO_OURS:
            fused, row = _GATE_TO_OURS[match.group(3)]
            gates.setdefault(f"decoders.{direction}.{fused}.{parameter}", {})[row] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"not an official ABM state dict: unknown keys {unknown[:10]}"
                              + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
    for key, rows in gates.items():
        if len(rows) != 3:
            raise CheckpointError(f"official state dict lacks gate layers of {key}: "
                                  f"has {sorted(rows)} of the blocks r=0, z=1, n=2")
        ours[key] = torch.cat([rows[0], rows[1], rows[2]], dim=0)
    return ours


def _shape(state: dict, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of state[key], or `default` when missing (the strict check then reports the key)."""
    return tuple(state[key].shape) if key in state and hasattr(state[key], "shape") else default


def official_config(state: dict[str, torch.Tensor]) -> ABMConfig:
    """The ABMConfig whose state dict has these official keys and shapes (sizes read from the weights)."""
    state = strip_data_parallel_prefix(state)
    has_l2r = any(key.startswith("gru_model.") for key in state)
    has_r2l = any(key.startswith("gru_model2.") for key in state)
    if has_r2l and not has_l2r:
        raise CheckpointError("official checkpoint holds only the R2L decoder; this library needs the L2R one")
    growth = _shape(state, "encoder1.dense1.0.conv2.weight", (24,))[0]
    blocks = {int(m.group(1)) for key in state if (m := re.match(r"encoder1\.dense(\d+)\.", key))}
    layers = {int(m.group(1)) for key in state if (m := re.match(r"encoder1\.dense1\.(\d+)\.", key))}
    transition = _shape(state, "encoder1.trans1.conv1.weight", (216, 432))
    encoder = EncoderConfig(
        growth_rate=growth,
        num_blocks=max(blocks, default=3),
        layers_per_block=max(layers, default=15) + 1,
        bottleneck_factor=_shape(state, "encoder1.dense1.0.conv1.weight", (4 * growth,))[0] // growth,
        reduction=transition[0] / transition[1],
        in_channels=_shape(state, "encoder1.conv1.weight", (0, 1))[1],
    )
    vocab_size, embedding_dim = _shape(state, "emb_model.embedding.weight", (113, 256))
    kernels = [_shape(state, "gru_model.conv_Q.weight", (0, 0, 11))[2]]
    if "gru_model.conv_Q2.weight" in state:
        kernels.append(_shape(state, "gru_model.conv_Q2.weight", (0, 0, 5))[2])
    decoder = DecoderConfig(
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        hidden_dim=_shape(state, "gru_model.fc_Uhz.weight", (256,))[0],
        attention_dim=_shape(state, "gru_model.fc_Wa.weight", (512,))[0],
        coverage_channels=_shape(state, "gru_model.conv_Q.weight", (512,))[0],
        coverage_kernels=tuple(kernels),
        readout_dim=_shape(state, "gru_prob_model.fc_Wct.weight", (256,))[0],
    )
    return ABMConfig(encoder=encoder, decoder=decoder, directions=("l2r", "r2l") if has_r2l else ("l2r",))


def official_mismatches(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and mis-shaped keys of `state`, in official names."""
    lines = [f"missing: {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state]
    lines += [f"unexpected: {k}" for k in state if k not in expected]
    lines += [f"shape: {k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return lines


def model_from_official_state_dict(state: dict[str, torch.Tensor], source: str = "official state dict") -> ABM:
    """Build the ABM these official weights describe and load them strictly (eval mode)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: not a state dict (a dict of tensors), got {type(state).__name__}")
    state = strip_data_parallel_prefix(state)
    model = ABM(official_config(state))
    problems = official_mismatches(to_official_state_dict(model.state_dict()), state)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(f"{source} does not fit the official ABM architecture "
                              f"({len(problems)} problems):\n  {shown}")
    model.load_state_dict(from_official_state_dict(state))
    return model.eval()


def load_official_checkpoint(path: Path | str) -> ABM:
    """An ABM (eval mode) from a `.pkl`/`.pth` state dict saved by the official train.py."""
    return model_from_official_state_dict(read_checkpoint(path), str(path))


def save_official_checkpoint(model: ABM, path: Path | str) -> None:
    """Write the model's weights as the official code's state dict (loadable by its test.py)."""
    atomic_save(to_official_state_dict(model.state_dict()), path)

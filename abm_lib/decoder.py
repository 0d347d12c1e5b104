"""The attention GRU decoder (one class, instantiated for L2R and for R2L).

Each step t, from the previous token y_{t-1} and state h_{t-1}:
    h'  = GRU_1(E y_{t-1}, h_{t-1})                 # predicts where to look
    a_t = CoverageAttention(F, h', beta_t)            # beta_t = sum of past a
    c_t = sum_{ij} a_t[ij] F[:, ij]                   # context, D = 684
    h_t = GRU_2(c_t, h')
    p(y_t) = softmax(W_o dropout(maxout(W_c c_t + W_h h_t + W_y E y_{t-1})))
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import CoverageAttention


@dataclass
class DecoderConfig:
    """Decoder sizes; the defaults are the official ones."""

    vocab_size: int = 113
    embedding_dim: int = 256
    hidden_dim: int = 256
    attention_dim: int = 512
    coverage_channels: int = 512
    coverage_kernels: tuple[int, ...] = (11, 5)  # AAM scales; DWAP: (11,); paper figure: (11, 3)
    readout_dim: int = 256  # maxout halves it to 128
    dropout: float = 0.2


class GatedRecurrentUnit(nn.Module):
    """A GRU cell written as two projections, so the input one can be applied to a whole sequence.

    Same equations as torch.nn.GRUCell (r, z, n; h = z*h + (1-z)*n), but each projection
    has a bias only where the official code has one: that keeps the parameter count and
    the state dict identical to the official model's.
    """

    def __init__(self, input_dim: int, hidden_dim: int, input_bias: bool, hidden_bias: bool):
        super().__init__()
        self.input_projection = nn.Linear(input_dim, 3 * hidden_dim, bias=input_bias)  # rows: r, z, n
        self.hidden_projection = nn.Linear(hidden_dim, 3 * hidden_dim, bias=hidden_bias)

    def forward(self, projected_input: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """projected_input = input_projection(x); returns the new hidden state."""
        input_r, input_z, input_n = projected_input.chunk(3, dim=-1)
        hidden_r, hidden_z, hidden_n = self.hidden_projection(hidden).chunk(3, dim=-1)
        reset = torch.sigmoid(input_r + hidden_r)
        update = torch.sigmoid(input_z + hidden_z)
        candidate = torch.tanh(input_n + reset * hidden_n)
        return update * hidden + (1 - update) * candidate


@dataclass
class DecoderMemory:
    """What a decoder reads at every step but computes once per image."""

    features: torch.Tensor  # (B, H*W, D), flattened for the context product
    feature_mask: torch.Tensor  # (B, H, W)
    projected_features: torch.Tensor  # (B, H*W, A)
    coverage_kernel: torch.Tensor  # (A, 1, K, K), shared by the batch

    def select(self, index: torch.Tensor) -> "DecoderMemory":
        """Rows `index` of the batch (used by beam search to give each beam its image)."""
        return DecoderMemory(self.features[index], self.feature_mask[index],
                             self.projected_features[index], self.coverage_kernel)

    def first(self, rows: int) -> "DecoderMemory":
        """The first `rows` rows of the batch, as views."""
        return DecoderMemory(self.features[:rows], self.feature_mask[:rows],
                             self.projected_features[:rows], self.coverage_kernel)


@dataclass
class DecoderState:
    """What changes from step to step: the GRU state and the coverage map."""

    hidden: torch.Tensor  # (B, n)
    coverage: torch.Tensor  # (B, H, W), float32

    def select(self, index: torch.Tensor) -> "DecoderState":
        return DecoderState(self.hidden[index], self.coverage[index])

    def first(self, rows: int) -> "DecoderState":
        return DecoderState(self.hidden[:rows], self.coverage[:rows])


class AttentionGRUDecoder(nn.Module):
    """Coverage-attention GRU decoder with the AAM; `forward` for training, `step` for search."""

    def __init__(self, feature_dim: int, config: DecoderConfig = DecoderConfig()):
        super().__init__()
        self.config = config
        n = config.hidden_dim
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.init_projection = nn.Linear(feature_dim, n)
        self.gru_input = GatedRecurrentUnit(config.embedding_dim, n, input_bias=True, hidden_bias=False)
        self.attention = CoverageAttention(feature_dim, n, config.attention_dim,
                                           config.coverage_channels, config.coverage_kernels)
        self.gru_context = GatedRecurrentUnit(feature_dim, n, input_bias=False, hidden_bias=True)
        self.readout_context = nn.Linear(feature_dim, config.readout_dim)
        self.readout_hidden = nn.Linear(n, config.readout_dim)
        self.readout_embedding = nn.Linear(config.embedding_dim, config.readout_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.readout_dim // 2, config.vocab_size)

    def start(self, features: torch.Tensor, feature_mask: torch.Tensor) -> tuple[DecoderMemory, DecoderState]:
        """Per-image memory and the initial state h0 = tanh(W mean(F over real cells))."""
        mask = feature_mask.unsqueeze(1).to(features.dtype)
        mean = (features * mask).sum((2, 3)) / mask.sum((2, 3))
        hidden = torch.tanh(self.init_projection(mean))
        memory = DecoderMemory(features.flatten(2).transpose(1, 2), feature_mask,
                               self.attention.project_features(features), self.attention.folded_coverage_kernel())
        coverage = torch.zeros(feature_mask.shape, dtype=torch.float32, device=features.device)
        return memory, DecoderState(hidden, coverage)

    def _recur(self, memory: DecoderMemory, state: DecoderState, gru_input: torch.Tensor):
        """One step of GRU_1, attention and GRU_2; gru_input = gru_input.input_projection(E y)."""
        hidden = self.gru_input(gru_input, state.hidden)
        alpha = self.attention(memory.projected_features, memory.feature_mask, hidden,
                               state.coverage, memory.coverage_kernel)
        weights = alpha.flatten(1).unsqueeze(1).to(memory.features.dtype)  # (B, 1, H*W)
        context = (weights @ memory.features).squeeze(1)  # (B, D)
        hidden = self.gru_context(self.gru_context.input_projection(context), hidden)
        return DecoderState(hidden, state.coverage + alpha), context, alpha

    def readout(self, context: torch.Tensor, hidden: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary from c_t, h_t and E y_{t-1} (any leading shape)."""
        merged = self.readout_context(context) + self.readout_hidden(hidden) + self.readout_embedding(embedded)
        maxout = merged.unflatten(-1, (-1, 2)).amax(-1)
        return self.classifier(self.dropout(maxout))

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids: torch.Tensor,
                steps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: input_ids (B,T) -> logits (B,T,K) and attention maps (B,T,H,W).

        steps (B,), optional: how many leading positions of each row are real (label length + 1).
        A row's recurrence stops there, so a batch pays for each label's own length instead of
        the longest one's; its later attention maps are zeros and its later logits are computed
        from zero context and state. Real positions come out the same as without `steps`.
        """
        batch, length = input_ids.shape
        if steps is None:
            return self._teacher_forced(features, feature_mask, input_ids, [batch] * length)
        counts = steps.cpu()
        if counts.shape != (batch,) or counts.min() < 1 or counts.max() > length:
            raise ValueError(f"steps must hold one count in [1, {length}] per row, got {counts.tolist()}")
        order = torch.argsort(counts, descending=True, stable=True)  # longest first: live rows are a prefix
        live = [int((counts > t).sum()) for t in range(length)]
        order = order.to(input_ids.device)
        logits, alphas = self._teacher_forced(features[order], feature_mask[order], input_ids[order], live)
        restore = torch.argsort(order)
        return logits[restore], alphas[restore]

    def _teacher_forced(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids: torch.Tensor,
                        live: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The step loop; at step t only the first live[t] rows (non-increasing in t) are computed."""
        batch, length = input_ids.shape
        memory, state = self.start(features, feature_mask)
        embedded = self.embedding(input_ids)
        gru_inputs = self.gru_input.input_projection(embedded)  # all steps at once
        contexts, hiddens, alphas = [], [], []
        for t, rows in enumerate(live):
            if rows == 0:
                break
            if rows < batch:
                memory, state = memory.first(rows), state.first(rows)
            state, context, alpha = self._recur(memory, state, gru_inputs[:rows, t])
            contexts.append(_pad(context, batch))
            hiddens.append(_pad(state.hidden, batch))
            alphas.append(_pad(alpha, batch))
        contexts, hiddens, alphas = (_pad(torch.stack(x, 1), length, dim=1) for x in (contexts, hiddens, alphas))
        return self.readout(contexts, hiddens, embedded), alphas

    def step(self, memory: DecoderMemory, state: DecoderState,
             previous_ids: torch.Tensor) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoding step: previous_ids (B,) -> logits (B,K), new state, attention (B,H,W)."""
        embedded = self.embedding(previous_ids)
        state, context, alpha = self._recur(memory, state, self.gru_input.input_projection(embedded))
        return self.readout(context, state.hidden, embedded), state, alpha


def _pad(tensor: torch.Tensor, size: int, dim: int = 0) -> torch.Tensor:
    """tensor extended with zeros along `dim` up to `size`."""
    missing = size - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor, tensor.new_zeros(shape)], dim)

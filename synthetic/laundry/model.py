"""The attention-only Laundry List model: causal single-head layers, no MLP, no LayerNorm.

Row-vector convention. With token embeddings ``e_t`` (an item vector or a learned ``SEP``/``QRY``/item
embedding) and learned absolute positions ``p_t``, the residual entering layer 0 is
``x_t = e_t + p_t``, and layer ``l`` adds its heads' outputs::

    x <- x + sum_h softmax(mask(Q_h K_h^T / sqrt(d_qk))) V_h W_O,h,   Q = x W_Q, K = x W_K, V = x W_V.

Options of :class:`~attnlab.synthetic.laundry.config.LaundryConfig` change what a layer reads:

* ``matching_layer0``: layer 0 computes ``Q = e W_Q``, ``K = e W_Q`` (tied, so the score
  ``e_i W_Q W_Q^T e_j`` is symmetric and largest for a repeated item) and ``V = p W_V`` (a position
  code), with strictly causal attention (key ``j < i``; token 0 sees itself);
* the last layer (the *mover*) may see only the first list (``mover_reads_first_list``) and only the
  positions on its key side (``mover_positional_keys``).

The logits at the query position depend on ``readout``: the mover output times an unembedding over
the vocabulary items; the mover's pre-softmax scores over the ``n`` first-list positions (a pointer
to the missing index, so the mover's value path does no work); or the mover output dotted with each
first-list item vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from attnlab.synthetic.laundry.config import LaundryConfig
from attnlab.synthetic.laundry.data import Prompts, Stream
from attnlab.synthetic.models import stream_generator

#: ``f(layer, head_outputs (batch, heads, T, d_model)) -> same``, before they enter the residual stream.
HeadEdit = Callable[[int, torch.Tensor], torch.Tensor]
#: ``f(x (batch, d_model)) -> same``: the residual at the query position as the mover reads it.
ResidualEdit = Callable[[torch.Tensor], torch.Tensor]


def _per_head(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``(batch, T, d) x (heads, d, e) -> (batch, heads, T, e)`` as one matrix product."""
    heads, d, e = weight.shape
    flat = x @ weight.permute(1, 0, 2).reshape(d, heads * e)
    return flat.view(*x.shape[:-1], heads, e).transpose(-2, -3)


def _normal(generator: torch.Generator, *shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape, generator=generator) * std)


class AttentionLayer(nn.Module):
    """``heads`` attention heads of query/key width ``qk_width`` and value width ``value_width``.

    ``W_Q, W_K ~ N(0, 1/d_model)`` (times ``qk_scale``), ``W_V ~ N(0, 1/d_model)``,
    ``W_O ~ N(0, 1/value_width)``; ``tied_qk`` uses ``W_Q`` for the keys too; ``value_width = 0``
    leaves the layer without a value path; ``identity_value`` starts ``W_V = W_O = I``.
    """

    def __init__(
        self,
        heads: int,
        d_model: int,
        qk_width: int,
        value_width: int,
        generator: torch.Generator,
        *,
        tied_qk: bool = False,
        qk_scale: float = 1.0,
        identity_value: bool = False,
    ) -> None:
        super().__init__()
        std = qk_scale / math.sqrt(d_model)
        self.w_q = _normal(generator, heads, d_model, qk_width, std=std)
        self.w_k = None if tied_qk else _normal(generator, heads, d_model, qk_width, std=std)
        self.w_v: nn.Parameter | None = None
        self.w_o: nn.Parameter | None = None
        if value_width:
            self.w_v = _normal(generator, heads, d_model, value_width, std=1 / math.sqrt(d_model))
            self.w_o = _normal(generator, heads, value_width, d_model, std=1 / math.sqrt(value_width))
            if identity_value:
                with torch.no_grad():
                    eye = torch.eye(d_model).expand(heads, d_model, d_model)
                    self.w_v.copy_(eye)
                    self.w_o.copy_(eye)

    @property
    def keys_weight(self) -> torch.Tensor:
        return self.w_q if self.w_k is None else self.w_k

    def scores(self, query_source: torch.Tensor, key_source: torch.Tensor) -> torch.Tensor:
        """``(batch, heads, T_q, T)`` pre-softmax scores ``Q K^T / sqrt(d_qk)``."""
        q = _per_head(query_source, self.w_q)
        k = _per_head(key_source, self.keys_weight)
        return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])

    def outputs(self, attention: torch.Tensor, value_source: torch.Tensor) -> torch.Tensor:
        """``(batch, heads, T_q, d_model)`` per-head outputs ``A V W_O``."""
        if self.w_v is None or self.w_o is None:
            raise ValueError("outputs: this layer has no value path (value width 0)")
        return (attention @ _per_head(value_source, self.w_v)) @ self.w_o

    def ov(self, head: int) -> np.ndarray:
        """``W_V W_O`` of a head (d_model x d_model, float64)."""
        if self.w_v is None or self.w_o is None:
            raise ValueError("ov: this layer has no value path (value width 0)")
        return (self.w_v[head] @ self.w_o[head]).detach().double().cpu().numpy()

    def qk(self, head: int) -> np.ndarray:
        """``W_Q W_K^T`` of a head (d_model x d_model, float64)."""
        return (self.w_q[head] @ self.keys_weight[head].T).detach().double().cpu().numpy()


class LaundryModel(nn.Module):
    """The Laundry List model of ``config``, initialised from the generator ``generator``."""

    def __init__(self, config: LaundryConfig, generator: torch.Generator) -> None:
        super().__init__()
        d = config.d_model
        self.config = config
        # gaussian items bring their own vectors; only SEP and QRY are learned then
        table_rows = config.vocab_size if config.items == "vocabulary" else 2
        self.embed = _normal(generator, table_rows, d, std=1 / math.sqrt(d))
        self.pos = _normal(generator, config.max_sequence, d, std=1 / math.sqrt(d))
        last = config.n_layers - 1
        self.layers = nn.ModuleList(
            AttentionLayer(
                config.heads[layer],
                d,
                config.qk_widths[layer],
                config.d_heads[layer],
                generator,
                tied_qk=layer == 0 and config.matching_layer0,
                qk_scale=config.matching_init_scale if layer == 0 and config.matching_layer0 else 1.0,
                identity_value=layer == last and config.mover_identity_init,
            )
            for layer in range(config.n_layers)
        )
        self.unembed = (
            _normal(generator, d, config.n_items, std=1 / math.sqrt(d)) if config.readout == "unembed" else None
        )

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def token_embeddings(self, tokens: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """``(batch, T, d_model)``: learned rows for vocabulary tokens, item vectors for gaussian slots."""
        if self.config.items == "vocabulary":
            return self.embed[tokens]
        if items is None:
            raise ValueError("items: gaussian-item prompts need their item vectors")
        batch, n, d = items.shape
        padding = items.new_zeros(batch, self.config.max_length - n, d)
        table = torch.cat([items, padding, self.embed.expand(batch, 2, d)], dim=1)
        return table[torch.arange(batch, device=tokens.device)[:, None], tokens]

    def _masks(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        strict = causal.tril(-1)
        strict[0, 0] = True
        mover = causal[-1:].clone()
        if self.config.mover_reads_first_list:
            mover[:, (length - 1) // 2 :] = False
        return causal, strict, mover

    def forward(
        self,
        tokens: torch.Tensor,
        items: torch.Tensor | None = None,
        *,
        head_edit: HeadEdit | None = None,
        mover_input_edit: ResidualEdit | None = None,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits at the query position: ``(batch, n_items)`` (unembed) or ``(batch, n)`` (pointer, items).

        Args:
            tokens: ``(batch, T)`` int64.
            items: ``(batch, n, d_model)`` item vectors (gaussian items), else ``None``.
            head_edit: applied to every layer's head outputs before they enter the residual stream.
            mover_input_edit: applied to the residual at the query position as the mover reads it.
            cache: if given, filled with ``resid{l}`` (the residual entering layer ``l``), ``scores{l}``
                and ``attn{l}`` ``(batch, heads, T, T)`` and ``head_out{l}`` ``(batch, heads, T, d_model)``;
                the mover is evaluated at the query position only, so its entries have ``T_q = 1``.
        """
        config = self.config
        length = tokens.shape[1]
        n = (length - 1) // 2
        embedded = self.token_embeddings(tokens, items)
        positions = self.pos[:length].expand_as(embedded)
        x = embedded + positions
        causal, strict, mover_mask = self._masks(length, tokens.device)
        last = self.n_layers - 1
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, AttentionLayer)
            is_mover = index == last
            if is_mover and mover_input_edit is not None:
                x = torch.cat([x[:, :-1], mover_input_edit(x[:, -1]).unsqueeze(1)], dim=1)
            if cache is not None:
                cache[f"resid{index}"] = x
            matching = index == 0 and config.matching_layer0
            query_source, key_source, value_source = (embedded, embedded, positions) if matching else (x, x, x)
            if is_mover:
                # only the query position's mover output reaches the logits
                query_source = query_source[:, -1:]
                if config.mover_positional_keys:
                    key_source = positions
            mask = mover_mask if is_mover else strict if matching else causal
            scores = layer.scores(query_source, key_source)
            attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            if cache is not None:
                cache[f"scores{index}"] = scores
                cache[f"attn{index}"] = attention
            if is_mover and config.readout == "pointer":
                return scores[:, 0, -1, :n]
            head_out = layer.outputs(attention, value_source)
            if head_edit is not None:
                head_out = head_edit(index, head_out)
            if cache is not None:
                cache[f"head_out{index}"] = head_out
            if not is_mover:
                x = x + head_out.sum(dim=1)
        mover_out = head_out[:, :, -1].sum(dim=1)
        if config.readout == "unembed":
            assert self.unembed is not None
            return mover_out @ self.unembed
        assert items is not None
        return torch.einsum("bd,bnd->bn", mover_out, items)

    def ov(self, layer: int, head: int) -> np.ndarray:
        """``W_V W_O`` of a head (d_model x d_model, float64, row convention)."""
        return self._layer(layer).ov(head)

    def qk(self, layer: int, head: int) -> np.ndarray:
        """``W_Q W_K^T`` of a head (d_model x d_model, float64, row convention)."""
        return self._layer(layer).qk(head)

    def _layer(self, layer: int) -> AttentionLayer:
        module = self.layers[layer]
        assert isinstance(module, AttentionLayer)
        return module


def init_model(config: LaundryConfig, seed: int) -> LaundryModel:
    """The untrained model of ``(config, seed)`` (the seed's initialisation stream)."""
    return LaundryModel(config, stream_generator(seed, Stream.INIT))


def run_model(model: LaundryModel, prompts: Prompts, **options: object) -> torch.Tensor:
    """``model`` on a batch of :class:`~attnlab.synthetic.laundry.data.Prompts` (moved to its device)."""
    device = next(model.parameters()).device
    items = None if prompts.items is None else prompts.items.to(device)
    return model(prompts.tokens.to(device), items, **options)

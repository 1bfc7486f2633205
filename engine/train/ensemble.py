"""Seed ensembles of small two-layer heads merged into one head of the same kind.

A head here standardises its input (``mean``, ``std`` buffers) and runs ``net``: a first
``nn.Linear`` to a hidden layer, an activation (and dropout), a last ``nn.Linear`` to logits.
Stacking the members' hidden layers side by side and averaging their output layers gives one
head of ``sum(hidden)`` units whose logits are exactly the mean of the members' logits: the
checkpoint format and the serving code stay as they are, at the cost of one wider matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

H = TypeVar("H", bound=nn.Module)


def merge_logit_heads(heads: Sequence[H], build: Callable[[int, int, int], H]) -> H:
    """The merge of ``heads``; ``build(in_dim, hidden, n_out)`` makes an empty head of their
    kind. Members must share the input size, the classes and the standardisation."""
    first = heads[0]
    in_dim, n_out = first.net[0].in_features, first.net[-1].out_features
    if any(h.net[0].in_features != in_dim or h.net[-1].out_features != n_out for h in heads):
        raise ValueError("heads to merge must share their input size and classes")
    if any(not torch.equal(h.mean, first.mean) or not torch.equal(h.std, first.std) for h in heads):
        raise ValueError("heads to merge must share their input standardisation")
    merged = build(in_dim, sum(h.net[0].out_features for h in heads), n_out)
    with torch.no_grad():
        merged.mean.copy_(first.mean)
        merged.std.copy_(first.std)
        merged.net[0].weight.copy_(torch.cat([h.net[0].weight for h in heads], dim=0))
        merged.net[0].bias.copy_(torch.cat([h.net[0].bias for h in heads]))
        merged.net[-1].weight.copy_(
            torch.cat([h.net[-1].weight for h in heads], dim=1) / len(heads)
        )
        merged.net[-1].bias.copy_(torch.stack([h.net[-1].bias for h in heads]).mean(dim=0))
    return merged.eval()

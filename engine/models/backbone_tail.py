"""The image backbone with its last stages fine-tuned for shopper photos' object crops.

``python -m engine.train shopper`` can fine-tune the EfficientNet-Lite0 blocks from ``split``
on (and the head convolution) so that the object crop of a synthetic shopper photo gets the
pooled features of its studio photo (:mod:`engine.train.shopper_backbone`). The checkpoint
keeps only those weights (:class:`BackboneTail`: the split and a state-dict subset of the
backbone, float16); :meth:`BackboneTail.encoder` grafts them onto a copy of the backbone
photo search already uses (ONNX Runtime when that is what it uses: the adapted weights get
their own exported file, keyed by their digest). Only the objectness path's crop pass uses it:
studio shots, the whole-photo granularity, the objectness map and the indexed vectors keep the
packaged backbone.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.errors import ConfigError


def tail_prefixes(split: int) -> tuple[str, ...]:
    """State-dict key prefixes of the fine-tuned part of an EfficientNet-Lite model."""
    if split < 1:
        raise ConfigError(f"backbone split must be >= 1, got {split}")
    return tuple(f"_blocks.{i}." for i in range(split, 64)) + ("_conv_head.", "_bn1.")


def tail_state(model: torch.nn.Module, split: int) -> dict[str, torch.Tensor]:
    """The part of ``model``'s state dict from block ``split`` on (and the head)."""
    prefixes = tail_prefixes(split)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def apply_tail(model: torch.nn.Module, split: int, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` (see :func:`tail_state`) into ``model``; every key must fit."""
    own = model.state_dict()
    wanted = {k for k in own if k.startswith(tail_prefixes(split))}
    if set(state) != wanted:
        missing, extra = sorted(wanted - set(state))[:3], sorted(set(state) - wanted)[:3]
        raise ConfigError(f"backbone tail does not fit (missing {missing}, unexpected {extra})")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ConfigError(f"backbone tail does not fit: {k} {tuple(v.shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


@dataclass
class BackboneTail:
    """Fine-tuned last stages of the image backbone (see the module docstring)."""

    split: int
    state: dict[str, torch.Tensor]
    _cache: dict[int, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def encoder(self, base: Any) -> Any:
        """``base`` (an ``ImageEncoder`` or its ONNX Runtime backbone) with these weights; built
        once per base encoder."""
        key = id(base)
        with self._lock:
            found = self._cache.get(key)
            if found is not None and found[0] is base:
                return found[1]
        from engine.models.accel import OnnxImageBackbone

        torch_enc = base.encoder if isinstance(base, OnnxImageBackbone) else base
        adapted = copy.copy(torch_enc)
        adapted.model = copy.deepcopy(torch_enc.model)
        apply_tail(adapted.model, self.split, self.state)
        adapted.model.eval()
        out: Any = adapted
        if isinstance(base, OnnxImageBackbone):
            out = OnnxImageBackbone.build(adapted, base._cache_dir, base._threads)
        with self._lock:
            self._cache[key] = (base, out)
        return out

    def to_state(self) -> dict[str, Any]:
        """For the checkpoint: weights float16, batch-norm statistics float32."""

        def small(k: str, v: torch.Tensor) -> torch.Tensor:
            if not v.is_floating_point() or k.endswith(("running_mean", "running_var")):
                return v.detach()
            return v.detach().half()

        return {"split": int(self.split), "state": {k: small(k, v) for k, v in self.state.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BackboneTail:
        weights = dict(state["state"])
        return cls(
            int(state["split"]),
            {k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
        )

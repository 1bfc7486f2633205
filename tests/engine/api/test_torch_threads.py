"""The API's joint loader pins torch's intra-op threads (api.torch_threads)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine.api.app import default_loaders
from engine.settings import ApiSettings, ModelSettings, Settings


class _Model:
    def accelerate(self, threads: Any = None) -> str:
        return "image=onnx text=onnx"


@pytest.mark.parametrize(("setting", "expected"), [(1, 1), (0, None)])
def test_joint_loader_sets_torch_threads(
    monkeypatch: Any, setting: int, expected: int | None
) -> None:
    import engine.models.joint as joint

    monkeypatch.setattr(joint.JointModel, "load", classmethod(lambda cls, *a, **k: _Model()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        settings = Settings(
            models=ModelSettings(device="cpu"), api=ApiSettings(torch_threads=setting)
        )
        default_loaders(settings)["joint"]()
        assert torch.get_num_threads() == (expected or 2)  # 0 leaves torch's own setting
    finally:
        torch.set_num_threads(before)

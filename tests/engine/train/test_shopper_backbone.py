"""Fine-tuning the backbone's last stages (engine.train.shopper_backbone) on real Lite0
prefix outputs: the tail learns to map crops to target features, and its weights graft back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.models.encoders import ImageEncoder
from engine.train.shopper_backbone import adapted_pooled, prefix_function, train_tail

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "images"


def test_the_tail_moves_crops_towards_their_targets() -> None:
    enc = ImageEncoder("cpu", num_threads=1)
    imgs = [Image.open(p).convert("RGB") for p in sorted(SAMPLE.glob("*.jpg"))[:24]]
    # "shopper" view: the photo darkened and cut; target: the original photo's features
    views = [
        Image.eval(img.crop((0, 0, img.width, int(img.height * 0.8))), lambda v: int(v * 0.6))
        for img in imgs
    ]
    maps = prefix_function(enc.model, 13)(views)
    assert maps.dtype == np.float16 and maps.shape[0] == 24
    targets = enc.features(imgs)
    untouched = adapted_pooled(
        enc.model, *train_tail(enc.model, 13, maps, targets, epochs=0)[:1], maps
    )
    np.testing.assert_allclose(untouched, enc.features(views), atol=2e-2)
    tail, report = train_tail(
        enc.model, 13, maps[:16], targets[:16], val=(maps[16:], targets[16:]), epochs=8, lr=1e-3
    )
    assert set(report) == {"val_cosine_before", "val_cosine"}  # 8 photos: reported, not judged
    adapted = adapted_pooled(enc.model, tail, maps[:16])
    cos = np.sum(adapted * targets[:16], 1) / (
        np.linalg.norm(adapted, axis=1) * np.linalg.norm(targets[:16], axis=1)
    )
    before = np.sum(untouched[:16] * targets[:16], 1) / (
        np.linalg.norm(untouched[:16], axis=1) * np.linalg.norm(targets[:16], axis=1)
    )
    assert cos.mean() > before.mean() + 0.02
    # a type probe on the pooled features (dropped afterwards) can join the loss
    probed, _ = train_tail(
        enc.model,
        13,
        maps[:16],
        targets[:16],
        labels=np.arange(16) % 3 - (np.arange(16) == 0),
        type_weight=0.5,
        epochs=1,
    )
    assert set(probed.state) == set(tail.state)
    # the grafted tail reproduces what training computed, through the full backbone
    graft = tail.encoder(enc)
    np.testing.assert_allclose(graft.features(views[:4]), adapted[:4], atol=2e-2)


def test_a_studio_teacher_pulls_the_crops_type_reading_towards_the_studio_photos() -> None:
    import torch
    from torch import nn

    from engine.train.shopper_backbone import StudioTeacher

    torch.manual_seed(0)
    enc = ImageEncoder("cpu", num_threads=1)
    imgs = [Image.open(p).convert("RGB") for p in sorted(SAMPLE.glob("*.jpg"))[:16]]
    views = [Image.eval(img, lambda v: int(v * 0.5)) for img in imgs]
    maps = prefix_function(enc.model, 14)(views)
    targets = enc.features(imgs)
    colour = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    head = nn.Linear(targets.shape[1] + 4, 3)
    with torch.no_grad():
        head.weight.mul_(30.0)  # confident readings, so the darkened crops read differently
        probs = torch.softmax(head(torch.from_numpy(np.hstack([targets, colour]))), -1).numpy()
    teacher = StudioTeacher(head, colour, probs, weight=5.0)
    rows = np.arange(16)

    def kl(features: np.ndarray) -> float:
        with torch.no_grad():
            return float(teacher.loss(torch.from_numpy(features), rows))

    tail, _ = train_tail(enc.model, 14, maps, targets, teacher=teacher, epochs=10, lr=1e-4)
    before = kl(enc.features(views))
    after = kl(adapted_pooled(enc.model, tail, maps))
    assert after < 0.7 * before, (before, after)
    assert all(not p.requires_grad for p in teacher.head.parameters())  # the head stays frozen

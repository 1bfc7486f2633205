"""The CLIP plug-in path with a tiny randomly initialised CLIPModel saved to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ModelUnavailable
from engine.models.clip import ClipEncoder, load_clip

WORDS = ["red", "blue", "shirt", "shoes", "black", "dress", "men", "women"]


def _save_tiny_clip(directory: Path) -> None:
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        PreTrainedTokenizerFast,
    )

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=12,
    )
    CLIPModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(directory)


def test_tiny_clip_embeds_images_and_texts(tmp_path: Path) -> None:
    _save_tiny_clip(tmp_path / "clip")
    enc = ClipEncoder(tmp_path / "clip", device="cpu", batch_size=2)
    assert enc.dim == 12
    imgs = [
        Image.new("RGB", (40, 60), (255, 255, 255)),
        Image.new("RGB", (50, 50), (200, 10, 10)),
        Image.new("RGB", (64, 32), (10, 10, 200)),
    ]
    iv = enc.embed_images(imgs)
    tv = enc.embed_texts(["red shirt", "blue shoes for men", "black dress"])
    for v in (iv, tv):
        assert v.shape == (3, 12) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # Different inputs give different vectors; the same input the same vector.
    assert not np.allclose(tv[0], tv[1])
    assert np.allclose(enc.embed_texts(["red shirt"])[0], tv[0], atol=1e-5)
    assert enc.embed_texts([]).shape == (0, 12)


def test_missing_or_invalid_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not found"):
        ClipEncoder(tmp_path / "nope", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="config.json"):
        ClipEncoder(tmp_path / "empty", device="cpu")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="cannot load"):
        ClipEncoder(bad, device="cpu")
    with pytest.raises(ModelUnavailable, match="no CLIP checkpoint"):
        load_clip(None)

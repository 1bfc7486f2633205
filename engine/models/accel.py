"""ONNX Runtime execution of the frozen backbones on CPU (ingest and query time).

On the 2-core CPU, PyTorch eager spends ~100 ms of CPU per image in EfficientNet-Lite0 (its
depthwise convolutions are poorly served); ONNX Runtime runs the same graph ~3x faster, and
runs MiniLM with less thread spinning. The graphs are exported once from the very modules
:mod:`engine.models.encoders` loads (same weights, same preprocessing, same pooling) and cached
under ``.cache/onnx/`` keyed by a hash of the weights; on load each session is checked against
PyTorch on a probe batch and rejected (PyTorch is used) if outputs differ by more than
``tolerance``. Needs ``onnx`` + ``onnxruntime`` (installed with the package); without them,
on CUDA, or with ``OUTFIT_MODELS__ONNX=false``, the PyTorch encoders are used unchanged.
For a short query MiniLM takes ~19 ms in ONNX Runtime vs ~67 ms in PyTorch eager (one thread,
loaded machine), so the API uses it too.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.models.checkpoints import atomic_write_bytes, module_digest
from engine.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "onnx"
EXPORT_VERSION = "1"


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _weights_digest(module: torch.nn.Module, tag: str) -> str:
    # the torch version is part of it: another exporter may write another graph
    return module_digest(module, f"{tag}:{EXPORT_VERSION}:{torch.__version__}")


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = int(threads or 0)  # 0: ORT's default (all cores)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # no busy-waiting between runs: the cores are shared with decoding and indexing
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, **kw: Any) -> None:
    """Export with the TorchScript-based exporter; atomic write into the cache."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python code
        torch.onnx.export(module, args, buf, opset_version=17, dynamo=False, **kw)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


class _ImageFeatures(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))


class _ImageMaps(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)


class _TextHidden(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


class OnnxImageBackbone:
    """Drop-in for :meth:`engine.models.encoders.ImageEncoder.features`."""

    def __init__(
        self,
        encoder: Any,
        session: Any,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        threads: int | None = None,
    ) -> None:
        self.encoder = encoder
        self.session = session
        self._cache_dir = Path(cache_dir)
        self._threads = threads
        self._maps_session: Any = None

    @classmethod
    def build(
        cls, encoder: Any, cache_dir: Path = DEFAULT_CACHE_DIR, threads: int | None = None
    ) -> OnnxImageBackbone:
        # export from a contiguous-format copy of the frozen model
        module = _ImageFeatures(encoder.model).to(memory_format=torch.contiguous_format).eval()
        size = int(encoder.image_size)
        path = Path(cache_dir) / f"image_{_weights_digest(module, f'img{size}')}.onnx"
        if not path.is_file():
            logger.info("exporting the image backbone to %s", path)
            _export(
                module,
                (torch.zeros(2, 3, size, size),),
                path,
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
            )
        if encoder.device.type == "cpu":
            encoder.model.to(memory_format=torch.channels_last)
        return cls(encoder, _session(path, threads), cache_dir, threads)

    def feature_maps(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 1280, h, w) last-convolution maps (the photo-localisation path; a second
        session, exported on first use)."""
        from engine.models.encoders import IMAGE_FEATURE_DIM

        if self._maps_session is None:
            module = _ImageMaps(self.encoder.model).to(memory_format=torch.contiguous_format)
            size = int(self.encoder.image_size)
            path = self._cache_dir / f"imagemap_{_weights_digest(module.eval(), f'map{size}')}.onnx"
            if not path.is_file():
                _export(
                    module,
                    (torch.zeros(2, 3, size, size),),
                    path,
                    input_names=["x"],
                    output_names=["maps"],
                    dynamic_axes={"x": {0: "n"}, "maps": {0: "n"}},
                )
            if self.encoder.device.type == "cpu":
                self.encoder.model.to(memory_format=torch.channels_last)
            self._maps_session = _session(path, self._threads)
        if len(images) == 0:
            return np.zeros((0, IMAGE_FEATURE_DIM, 1, 1), dtype=np.float32)
        return self._batched(self._maps_session, images)

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        from engine.models.encoders import IMAGE_FEATURE_DIM

        if len(images) == 0:
            return np.zeros((0, IMAGE_FEATURE_DIM), dtype=np.float32)
        return self._batched(self.session, images)

    def _batched(self, session: Any, images: Sequence[Image.Image]) -> np.ndarray:
        """``session`` run batch by batch (memory stays one batch's), outputs concatenated."""
        from engine.models.encoders import preprocess_images

        out = []
        bs = int(self.encoder.batch_size)
        for start in range(0, len(images), bs):
            x = preprocess_images(list(images[start : start + bs]), self.encoder.image_size)
            out.append(np.asarray(session.run(None, {"x": x.numpy()})[0]))
        return np.concatenate(out).astype(np.float32)


class OnnxTextEncoder:
    """Drop-in for :meth:`engine.models.encoders.TextEncoder.encode` (mean pooling, L2)."""

    def __init__(self, encoder: Any, session: Any) -> None:
        self.encoder = encoder
        self.session = session

    @classmethod
    def build(
        cls, encoder: Any, cache_dir: Path = DEFAULT_CACHE_DIR, threads: int | None = None
    ) -> OnnxTextEncoder:
        module = _TextHidden(encoder.model).eval()
        path = Path(cache_dir) / f"text_{_weights_digest(module, 'minilm')}.onnx"
        if not path.is_file():
            logger.info("exporting the text encoder to %s", path)
            enc = encoder.tokenizer(
                ["a short text", "another one"], padding=True, return_tensors="pt"
            )
            names = ["input_ids", "attention_mask", "token_type_ids"]
            axes = {n: {0: "batch", 1: "seq"} for n in [*names, "hidden"]}
            _export(
                module,
                tuple(enc[n] for n in names),
                path,
                input_names=names,
                output_names=["hidden"],
                dynamic_axes=axes,
            )
        return cls(encoder, _session(path, threads))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from engine.models.encoders import encode_by_length

        return encode_by_length(texts, self.encoder.batch_size, self._encode_batch)

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        enc = self.encoder
        tok = enc.tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=enc.max_length,
            return_tensors="np",
        )
        feeds = {
            "input_ids": tok["input_ids"].astype(np.int64),
            "attention_mask": tok["attention_mask"].astype(np.int64),
            "token_type_ids": tok.get("token_type_ids", np.zeros_like(tok["input_ids"])).astype(
                np.int64
            ),
        }
        hidden = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)  # type: ignore[no-any-return]


def runtime_label(image_backbone: Any, text_backbone: Any) -> str:
    """Which runtime runs each backbone, e.g. ``'image=onnx text=torch'`` (``text=static`` for
    the static document text encoder)."""
    from engine.models.static_text import StaticTextEncoder

    def kind(x: Any) -> str:
        if isinstance(x, StaticTextEncoder):
            return "static"
        return "onnx" if isinstance(x, OnnxImageBackbone | OnnxTextEncoder) else "torch"

    return f"image={kind(image_backbone)} text={kind(text_backbone)}"


def _probe_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)),
        Image.new("RGB", (224, 224), (240, 240, 240)),
    ]


_PROBE_TEXTS = [
    "Nike Men Black Three Quarter Track Pants. Men, Shorts, Black, Sports",
    "red dress",
    "Roadster Women Navy Blue Slim Fit Striped Shirt with a spread collar and long sleeves",
]


def accelerate_image(
    image_encoder: Any,
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    threads: int | None = None,
    tolerance: float = 1e-3,
) -> Any:
    """The image backbone to use (also for training-time feature extraction): the ONNX Runtime
    session when available and equivalent to PyTorch on a probe batch, else ``image_encoder``."""
    if isinstance(image_encoder, OnnxImageBackbone):
        return image_encoder
    if image_encoder.device.type != "cpu" or not onnx_available():
        return image_encoder
    try:
        cand = OnnxImageBackbone.build(image_encoder, cache_dir, threads)
        probe = _probe_images()
        diff = float(np.abs(cand.features(probe) - image_encoder.features(probe)).max())
        if diff <= tolerance:
            return cand
        logger.warning("ONNX image backbone differs from PyTorch by %.2g: not used", diff)
    except Exception as exc:  # noqa: BLE001 - any export/runtime problem: keep PyTorch
        logger.warning("ONNX image backbone unavailable (%s): using PyTorch", exc)
    return image_encoder


def accelerate(
    image_encoder: Any,
    text_encoder: Any,
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    threads: int | None = None,
    tolerance: float = 1e-3,
) -> tuple[Any, Any]:
    """(image backbone, text encoder) to use: ONNX Runtime sessions when available and
    equivalent to PyTorch on a probe batch, else the given PyTorch encoders."""
    if isinstance(image_encoder, OnnxImageBackbone) and isinstance(text_encoder, OnnxTextEncoder):
        return image_encoder, text_encoder  # already accelerated
    if image_encoder.device.type != "cpu" or not onnx_available():
        return image_encoder, text_encoder
    img = accelerate_image(image_encoder, cache_dir=cache_dir, threads=threads, tolerance=tolerance)
    txt: Any = text_encoder
    try:
        cand_t = OnnxTextEncoder.build(text_encoder, cache_dir, threads)
        diff = float(np.abs(cand_t.encode(_PROBE_TEXTS) - text_encoder.encode(_PROBE_TEXTS)).max())
        if diff <= tolerance:
            txt = cand_t
        else:
            logger.warning("ONNX text encoder differs from PyTorch by %.2g: not used", diff)
    except Exception as exc:  # noqa: BLE001
        logger.warning("ONNX text encoder unavailable (%s): using PyTorch", exc)
    return img, txt

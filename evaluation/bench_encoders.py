"""Encoder throughput on this machine: ``python -m evaluation.bench_encoders``.

Prints images/s of the full image path (crop + colour + EfficientNet-Lite0 + joint projection)
at batch 32 and batch 1, the backbone alone, texts/s of MiniLM + projection for short queries and
for catalog document texts (``text_for_product`` of the sample catalog, ~59 word pieces), and the
static document text encoder ingest uses; on the CPU with PyTorch eager and with ONNX Runtime,
and on CUDA when available. Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.cli import CommandParser, setup_logging
from engine.models.encoders import ImageEncoder, apply_num_threads
from engine.models.joint import JointModel
from engine.settings import load_settings

TEXTS = [
    "navy blue slim fit cotton shirt for men",
    "red dress",
    "Nike Men Blue T20 Indian Cricket Jersey. Men, Tshirts, Blue, Sports, Solid, Short Sleeves",
    "black leather formal shoes with laces",
]


def _images(n: int, images_dir: Path | None) -> list[Image.Image]:
    if images_dir is not None and images_dir.is_dir():
        files = sorted(images_dir.glob("*.jpg"))[:n]
        if files:
            imgs = [Image.open(f).convert("RGB") for f in files]
            return [imgs[i % len(imgs)] for i in range(n)]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        arr = np.full((224, 224, 3), 255, np.uint8)
        arr[40:190, 60:170] = rng.integers(0, 255, 3)
        out.append(Image.fromarray(arr))
    return out


def _rate(fn: Callable[[], object], items: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return items * repeats / (time.perf_counter() - start)


def _documents(n: int) -> list[str]:
    from engine.catalog import load_catalog
    from engine.models.joint import text_for_product
    from engine.settings import SAMPLE_DIR

    texts = [text_for_product(p) for p in load_catalog(SAMPLE_DIR / "catalog.jsonl")]
    return [texts[i % len(texts)] for i in range(n)]


def bench(
    device: str, images_dir: Path | None, threads: int | None, repeats: int, runtime: str
) -> None:
    apply_num_threads(threads)
    model = JointModel.load(None, device, batch_size=32, num_threads=threads)
    label = model.accelerate(threads) if runtime == "onnx" else "image=torch text=torch"
    print(f"== device {device}, {label} (threads {threads})")
    imgs32 = _images(32, images_dir)
    one = imgs32[:1]
    enc: ImageEncoder = model.image_encoder
    print(
        f"backbone only     batch 32: {_rate(lambda: enc.features(imgs32), 32, repeats):8.1f} img/s"
    )
    print(
        f"image embed       batch 32: {_rate(lambda: model.embed_images(imgs32), 32, repeats):8.1f} img/s"
    )
    print(
        f"image embed       batch  1: {_rate(lambda: model.embed_images(one), 1, repeats * 8):8.1f} img/s"
    )
    texts = [TEXTS[i % len(TEXTS)] for i in range(64)]
    print(
        f"query text        batch 64: {_rate(lambda: model.embed_texts(texts), 64, repeats):8.1f} txt/s"
    )
    print(
        f"query text        batch  1: {_rate(lambda: model.embed_texts(TEXTS[:1]), 1, repeats * 8):8.1f} txt/s"
    )
    docs = _documents(64)
    print(
        f"document text     batch 64: {_rate(lambda: model.embed_texts(docs), 64, repeats):8.1f} txt/s (MiniLM)"
    )
    if runtime == "onnx" or device != "cpu":
        from engine.models.static_text import StaticTextEncoder

        static = StaticTextEncoder.load(model.text_encoder)
        docs32 = docs[:32]

        def run_static() -> object:
            return model.embed_text_features(static.encode(docs32))

        print(
            f"document text     batch 32: {_rate(run_static, 32, repeats * 8):8.1f} txt/s (static, ingest)"
        )


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = CommandParser("python -m evaluation.bench_encoders", __doc__)
    parser.add_argument("--images", type=Path, default=settings.shared_data / "images")
    parser.add_argument("--threads", type=int, default=settings.models.num_threads or 2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    setup_logging(args)
    bench("cpu", args.images, args.threads, args.repeats, "torch")
    if settings.models.onnx:
        bench("cpu", args.images, args.threads, args.repeats, "onnx")
    if torch.cuda.is_available():
        bench("cuda", args.images, args.threads, args.repeats, "torch")
    else:
        print("CUDA: not available")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

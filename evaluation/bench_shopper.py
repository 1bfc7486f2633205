"""Photo-upload query encoding in-process: today's path vs the shopper-photo path (prints numbers).

``python -m evaluation.bench_shopper [--photos 100] [--repeat 3]``: for studio photos of test
items and synthetic shopper photos of the same items, the time of
:meth:`engine.search.query_encoder.QueryEncoder.embed_photo` (decode excluded; the backbone on
ONNX Runtime, one thread by default) without and with the shopper model, interleaved photo by
photo so machine load hits both alike. The search request that follows is the same body either
way (one k-NN query, the same re-rank), so this is the whole difference in upload latency.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engine.catalog import is_test_id
from engine.cli import CommandParser, fail, setup_logging
from engine.errors import EngineError
from engine.models.joint import JointModel
from engine.models.shopper import ShopperModel
from engine.search.query_encoder import QueryEncoder
from engine.settings import DEFAULT_SHARED_DATA, load_settings
from engine.train.shopper_data import synthetic_photos


def _stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):.1f} ms, p99 {np.percentile(a, 99):.1f} ms (n={len(a)})"


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_shopper", __doc__)
    parser.add_argument("--images", type=Path, default=DEFAULT_SHARED_DATA / "images")
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        ms = load_settings().models
        joint = JointModel.load(ms.joint_path, "cpu", num_threads=args.threads)
        print("backbones:", joint.accelerate(args.threads))
        shopper = ShopperModel.load(ms.bundle)
    except EngineError as exc:
        return fail(exc)
    today = QueryEncoder(joint)
    served = QueryEncoder(joint, shopper=lambda: shopper)
    ids = sorted(p.stem for p in args.images.glob("*.jpg") if is_test_id(p.stem))
    photos = synthetic_photos(ids[: args.photos], args.images, 7)
    sets = {"studio": [s for _, s, _ in photos], "shopper": [ph.image for _, _, ph in photos]}
    for img in sets["studio"][:3] + sets["shopper"][:3]:  # warm up both paths
        today.embed_photo(img)
        served.embed_photo(img)
    for name, images in sets.items():
        times: dict[str, list[float]] = {"today": [], "served": []}
        for _ in range(args.repeat):
            for img in images:
                for label, enc in (("today", today), ("served", served)):
                    t0 = time.perf_counter()
                    enc.embed_photo(img)
                    times[label].append((time.perf_counter() - t0) * 1000)
        for label, values in times.items():
            print(f"{name} photos, {label}: {_stats(values)}")
    print(f"shopper photos, localisation alone: {_stats(_localisation(shopper, joint, sets))}")
    return 0


def _localisation(shopper: ShopperModel, joint: JointModel, sets: dict[str, list]) -> list[float]:
    """The localisation step of the served path on its own: the studio check, the whole
    photo's backbone pass (padded to a square) and the box from its map."""
    encoder = joint.image_encoder
    out = []
    for img in sets["shopper"]:
        t0 = time.perf_counter()
        rgb = img.convert("RGB")
        shopper.is_studio(rgb)
        shopper.first_pass([rgb], encoder)
        out.append((time.perf_counter() - t0) * 1000)
    return out


if __name__ == "__main__":
    raise SystemExit(main())

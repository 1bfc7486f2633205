"""Ingest against a real OpenSearch node with the real encoders (sample catalog).

The joint heads come from the shipped checkpoint (``engine/models/weights/joint.pt``); while it
has not been trained yet, an untrained checkpoint with the same architecture is written to a
temp folder instead (ingest mechanics do not depend on trained weights).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.backend import Backend
from engine.errors import ClusterUnavailable, IngestAborted
from engine.models.accel import onnx_available
from engine.settings import ModelSettings, Settings
from ingest.encode import JointEncoder
from ingest.pipeline import delete_products, ingest_products, update_products
from ingest.readers import write_jsonl
from tests.conftest import BOTH_ENGINES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample"
SAMPLE_CATALOG = SAMPLE / "catalog.jsonl"
SAMPLE_IMAGES = SAMPLE / "images"

CLUSTER_ENGINES = BOTH_ENGINES

needs_sample = pytest.mark.skipif(
    not SAMPLE_CATALOG.is_file(), reason="sample/ not generated (python -m evaluation.make_sample)"
)


def _sample_rows(n: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in SAMPLE_CATALOG.read_text().splitlines() if x.strip()]
    return rows if n is None else rows[:n]


@pytest.fixture(scope="module")
def joint_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.models.joint import DEFAULT_CHECKPOINT

    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    import torch

    from engine.models.binary import BinaryCoder
    from engine.models.joint import JointModel, build_net

    torch.manual_seed(0)
    vocab = {
        "article_type": ["Tshirts", "Shirts", "Jeans", "Dresses", "Casual Shoes", "Watches"],
        "base_colour": ["Black", "White", "Blue", "Red"],
    }
    config = {"dim": 256, "hidden": 512}
    rng = np.random.default_rng(0)
    coder = BinaryCoder.fit(rng.standard_normal((512, 256)).astype(np.float32), n_bits=256)
    model = JointModel(build_net(config, vocab), vocab, coder, config=config, device="cpu")
    return model.save(tmp_path_factory.mktemp("joint") / "joint.pt")


@pytest.fixture(scope="module")
def model_settings(settings: Settings, joint_checkpoint: Path) -> Settings:
    models = ModelSettings(joint_checkpoint=joint_checkpoint, device="cpu", num_threads=2)
    return settings.model_copy(update={"models": models})


@pytest.fixture(scope="module")
def encoder(model_settings: Settings) -> JointEncoder:
    return JointEncoder.load(model_settings)


def test_encoder_matches_joint_model(encoder: JointEncoder) -> None:
    """Crop+colour in the workers, backbones (ONNX Runtime when available) in the encoder:
    the same embeddings as JointModel.embed_images / embed_texts."""
    if not SAMPLE_IMAGES.is_dir():
        pytest.skip("sample images missing")
    paths = sorted(SAMPLE_IMAGES.glob("*.jpg"))[:4]
    images = [Image.open(p).convert("RGB") for p in paths]
    ours = encoder.embed_prepared([encoder.prepare_image(im) for im in images])
    ref = encoder.model.embed_images(images)
    assert ours.shape == (4, 256)
    assert np.abs(ours - ref).max() < 1e-3
    texts = ["red floral maxi dress", "Nike Men Black Track Pants. Men, Shorts, Black"]
    # documents' text side: the static encoder distilled from MiniLM (the default) ...
    assert encoder.document_text is not None
    static = encoder.model.embed_text_features(encoder.document_text.encode(texts))
    assert np.abs(encoder.embed_texts(texts) - static).max() < 1e-5
    assert encoder.embed_texts([]).shape == (0, 256)
    assert "+static-" in encoder.model_version  # a new document encoder re-encodes on ingest
    if onnx_available():  # the accelerated path is what ran above
        assert encoder.runtime == "image=onnx text=static"


def test_minilm_document_encoder_matches_joint_model(model_settings: Settings) -> None:
    encoder = JointEncoder.load(model_settings.with_models(document_text_encoder="minilm"))
    texts = ["red floral maxi dress", "Nike Men Black Track Pants. Men, Shorts, Black"]
    assert encoder.document_text is None and "+static" not in encoder.model_version
    assert np.abs(encoder.embed_texts(texts) - encoder.model.embed_texts(texts)).max() < 1e-3
    if onnx_available():
        assert encoder.runtime == "image=onnx text=onnx"


def _ingest(settings: Settings, catalog: Path, index: str, tmp: Path, **kw: Any) -> Any:
    kw.setdefault("images_dir", SAMPLE_IMAGES)
    return ingest_products(
        settings,
        catalog,
        index=index,
        state_dir=tmp / "state",
        progress=False,
        **kw,
    )


@pytest.mark.opensearch
@needs_sample
def test_sample_ingest_idempotent_update_delete(
    model_settings: Settings,
    cluster: Backend,
    products_index: str,
    encoder: JointEncoder,
    tmp_path: Path,
) -> None:
    expected = {r["id"] for r in _sample_rows()}
    r = _ingest(model_settings, SAMPLE_CATALOG, products_index, tmp_path, encoder=encoder)
    assert r.completed and r.reconciles, r.summary()
    assert r.read == len(expected) and r.failed == 0 and r.indexed == len(expected)
    assert cluster.count(products_index) == len(expected)
    assert {i for i, _ in cluster.iter_ids(products_index)} == expected
    # the slower refresh used while indexing is undone (the template's 1s again)
    index_settings = cluster.get_settings(products_index)[products_index]["settings"]["index"]
    assert index_settings.get("refresh_interval", "1s") == "1s"

    doc = cluster.get(products_index, "10018")
    assert len(doc["image_embedding"]) == 256 and len(doc["joint_embedding"]) == 256
    assert len(doc["binary_code"]) == 32 and doc["slot"] == "bottom"
    assert doc["model_version"] == encoder.model_version and doc["content_hash"]
    assert doc["predicted_category"] and 0 < doc["predicted_category_confidence"] <= 1
    # the vectors are searchable: an item's own image embedding finds it first
    body = {
        "size": 1,
        "query": {"knn": {"image_embedding": {"vector": doc["image_embedding"], "k": 5}}},
    }
    assert cluster.search(products_index, body)["hits"]["hits"][0]["_id"] == "10018"

    # second run: nothing changes
    r2 = _ingest(model_settings, SAMPLE_CATALOG, products_index, tmp_path, encoder=encoder)
    assert r2.reconciles and r2.skipped_unchanged == len(expected) and r2.indexed == 0
    assert cluster.count(products_index) == len(expected)
    assert cluster.get(products_index, "10018")["content_hash"] == doc["content_hash"]

    # business update without re-encoding
    prices = write_jsonl(
        [{"id": "10018", "price": 10, "discounted_price": 5}, {"id": "nope", "price": 1}],
        tmp_path / "prices.jsonl",
    )
    u = update_products(model_settings, prices, index=products_index, progress=False)
    assert u.indexed == 1 and u.failures_by_code == {"not_found": 1} and u.reconciles
    after = cluster.get(products_index, "10018")
    assert after["price"] == 10 and after["discount_pct"] == 50.0
    assert after["image_embedding"] == doc["image_embedding"]

    ids = tmp_path / "ids.txt"
    ids.write_text("10018\n10042\n")
    d = delete_products(model_settings, ids, index=products_index)
    assert d.indexed == 2 and d.reconciles
    assert cluster.count(products_index) == len(expected) - 2


@pytest.mark.opensearch
@needs_sample
def test_broken_items_appear_in_failure_report(
    model_settings: Settings,
    cluster: Backend,
    products_index: str,
    encoder: JointEncoder,
    tmp_path: Path,
) -> None:
    rows = _sample_rows(8)
    images = tmp_path / "images"
    images.mkdir()
    for r in rows:
        shutil.copy(SAMPLE_IMAGES / f"{r['id']}.jpg", images / f"{r['id']}.jpg")
    corrupt, truncated, no_photo = rows[1]["id"], rows[2]["id"], rows[3]["id"]
    raw = (images / f"{corrupt}.jpg").read_bytes()
    (images / f"{corrupt}.jpg").write_bytes(raw[:20] + os.urandom(len(raw) - 20))
    (images / f"{truncated}.jpg").write_bytes(raw[: len(raw) // 4])
    (images / f"{no_photo}.jpg").unlink()
    lines = [json.dumps(r) for r in rows]
    lines.insert(4, '{"id": "broken", "title": "no closing brace"')  # malformed row: line 5
    lines.append(json.dumps({"id": "untitled", "brand": "x"}))
    lines.append(json.dumps({"id": "badprice", "title": "t", "price": "free"}))
    lines.append(json.dumps({"id": "nofile", "title": "t", "image_urls": ["missing.jpg"]}))
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(lines) + "\n")

    r = _ingest(
        model_settings,
        catalog,
        products_index,
        tmp_path,
        images_dir=images,
        encoder=encoder,
        failures_path=tmp_path / "failures.jsonl",
        batch_size=4,
    )
    assert r.completed and r.reconciles, r.summary()
    assert r.read == 12 and r.failed == 6 and r.indexed == 6 and r.text_only == 1
    fails = {
        f["item_id"]: f
        for f in map(json.loads, (tmp_path / "failures.jsonl").read_text().splitlines())
    }
    assert fails[corrupt]["stage"] == "image" and fails[corrupt]["code"] == "image_invalid"
    assert fails[truncated]["stage"] == "image" and "truncated" in fails[truncated]["reason"]
    assert fails[None]["code"] == "malformed_json" and fails[None]["line"] == 5
    assert fails["untitled"]["code"] == "missing_title"
    assert fails["badprice"]["code"] == "invalid_field" and "price" in fails["badprice"]["reason"]
    assert fails["nofile"]["code"] == "image_not_found"
    assert r.failures_by_code == {
        "image_invalid": 2,
        "malformed_json": 1,
        "missing_title": 1,
        "invalid_field": 1,
        "image_not_found": 1,
    }
    cluster.refresh(products_index)
    assert cluster.count(products_index) == 6
    text_only = cluster.get(products_index, no_photo)
    assert "image_embedding" not in text_only and len(text_only["text_embedding"]) == 256


class _FlakyBackend:
    """The real backend, but bulk requests fail from the ``fail_at``-th one on."""

    def __init__(self, real: Backend, fail_at: int) -> None:
        self._real = real
        self.fail_at = fail_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def bulk(self, actions: Iterable[Mapping[str, Any]], **kw: Any) -> tuple[int, list[Any]]:
        batch = list(actions)
        self.calls += 1
        if self.calls >= self.fail_at:
            raise ClusterUnavailable("bulk indexing: cluster unreachable after 5 retries")
        return self._real.bulk(batch, **kw)


@pytest.mark.opensearch
@needs_sample
def test_injected_crash_then_resume(
    model_settings: Settings,
    cluster: Backend,
    products_index: str,
    encoder: JointEncoder,
    tmp_path: Path,
) -> None:
    rows = _sample_rows(24)
    catalog = write_jsonl(rows, tmp_path / "catalog.jsonl")
    flaky = _FlakyBackend(cluster, fail_at=2)
    with pytest.raises(IngestAborted, match="--resume") as exc:
        _ingest(
            model_settings,
            catalog,
            products_index,
            tmp_path,
            encoder=encoder,
            backend=flaky,
            batch_size=8,
        )
    cp = json.loads((tmp_path / "state" / f"{products_index}.checkpoint.json").read_text())
    assert cp["rows_done"] == 8 and not cp["completed"]
    assert exc.value.report.indexed == 8  # type: ignore[attr-defined]

    r = _ingest(
        model_settings,
        catalog,
        products_index,
        tmp_path,
        encoder=encoder,
        resume=True,
        batch_size=8,
    )
    assert r.completed and r.resumed_from_row == 8 and r.read == 16 and r.reconciles
    cluster.refresh(products_index)
    assert cluster.count(products_index) == 24
    assert {i for i, _ in cluster.iter_ids(products_index)} == {r["id"] for r in rows}


@pytest.mark.opensearch
@needs_sample
def test_killed_process_then_resume(
    model_settings: Settings,
    joint_checkpoint: Path,
    cluster: Backend,
    products_index: str,
    encoder: JointEncoder,
    tmp_path: Path,
) -> None:
    rows = _sample_rows(64)
    catalog = write_jsonl(rows, tmp_path / "catalog.jsonl")
    state = tmp_path / "state"
    failures = tmp_path / "failures.jsonl"
    cp_path = state / f"{products_index}.checkpoint.json"
    env = dict(os.environ)
    env.update(
        {
            "OUTFIT_CLUSTER__INDEX_PREFIX": model_settings.cluster.index_prefix,
            "OUTFIT_MODELS__JOINT_CHECKPOINT": str(joint_checkpoint),
            "OUTFIT_MODELS__DEVICE": "cpu",
            "OUTFIT_MODELS__NUM_THREADS": "2",
        }
    )
    if model_settings.cluster.engine is not None:
        env["OUTFIT_CLUSTER__ENGINE"] = model_settings.cluster.engine
        env.pop("OUTFIT_CLUSTER__URL", None)  # the local node of that engine, or the test URL
        if model_settings.cluster.url:
            env["OUTFIT_CLUSTER__URL"] = model_settings.cluster.url
    cmd = [
        sys.executable,
        "-m",
        "ingest",
        "products",
        "--catalog",
        str(catalog),
        "--images",
        str(SAMPLE_IMAGES),
        "--index",
        products_index,
        "--batch-size",
        "8",
        "--state-dir",
        str(state),
        "--failures",
        str(failures),
        "--no-progress",
    ]
    log = tmp_path / "ingest.log"
    with log.open("w") as log_fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            done = 0
            while time.monotonic() < deadline and proc.poll() is None:
                if cp_path.is_file():
                    # atomic writes: never half a file
                    done = json.loads(cp_path.read_text())["rows_done"]
                    if done >= 16:
                        break
                time.sleep(0.05)
            assert proc.poll() is None, f"ingest ended before the kill: {log.read_text()}"
            assert done >= 16, "no progress before the deadline"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads(cp_path.read_text())["rows_done"]
    assert 16 <= killed_at < 64

    r = _ingest(
        model_settings,
        catalog,
        products_index,
        tmp_path,
        encoder=encoder,
        resume=True,
        batch_size=8,
        failures_path=failures,
    )
    assert r.completed and r.reconciles and r.resumed_from_row == killed_at
    assert r.read == 64 - killed_at
    cluster.refresh(products_index)
    assert cluster.count(products_index) == 64
    assert {i for i, _ in cluster.iter_ids(products_index)} == {r["id"] for r in rows}

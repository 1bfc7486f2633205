"""``OUTFIT_API__WORKERS``: ``python -m engine serve`` in several worker processes, each building
its app from the environment through ``engine.api.asgi:app``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from engine.settings import ApiSettings
from evaluation.load_search import _free_port, _stop_server, _wait_ready


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def test_workers_must_be_positive() -> None:
    assert ApiSettings().workers == 1
    with pytest.raises(ValidationError):
        ApiSettings(workers=0)


def test_the_asgi_factory_builds_the_app_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.api.asgi import app

    monkeypatch.setenv("OUTFIT_CLUSTER__INDEX_PREFIX", "factorytest")
    monkeypatch.setenv("OUTFIT_CLUSTER__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OUTFIT_CLUSTER__ENGINE", "opensearch")
    with TestClient(app()) as client:
        body = client.get("/health").json()
    assert body["products_index"] == "factorytest-products"
    assert body["cluster"]["status"] == "unreachable"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_serve_with_two_workers_answers_from_two_processes(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "OUTFIT_API__WORKERS": "2",
        "OUTFIT_API__PORT": str(port),
        # health answers 200 with the cluster unreachable: no node needed here
        "OUTFIT_CLUSTER__URL": "http://127.0.0.1:9",
        "OUTFIT_CLUSTER__ENGINE": "opensearch",
        "OUTFIT_CLUSTER__INDEX_PREFIX": "workerstest",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, timeout_s=120.0)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{log.read_text()[-2000:]}")
        body = httpx.get(f"{url}/health", timeout=30).json()
        assert body["products_index"] == "workerstest-products"
        # the supervisor's worker processes (uvicorn also starts a resource tracker)
        workers = [c for c in _children(proc.pid) if _is_worker(c)]
        assert len(workers) >= 2
    finally:
        _stop_server(proc, timeout_s=30.0)
    assert proc.returncode is not None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_worker(pid: int) -> bool:
    """uvicorn's workers are multiprocessing spawn children (``multiprocessing.spawn``)."""
    cmd = _cmdline(pid)
    return "multiprocessing" in cmd and "resource_tracker" not in cmd

"""Schemathesis over the app's OpenAPI schema, in-process (ASGI), against the real node.

The sample catalog is indexed (deterministic vectors, as in the looks API tests) under a fresh
index prefix, the sample looks beside it. The app is the real one (``create_app``: its own
services, the shipped joint model, the compatibility model loader) with an admin key
configured, and every request carries that key, so the admin operations are reached and
really change the weights (their refusal without a key is tested in ``test_api_admin.py``).

Every operation gets ``FUZZ_EXAMPLES`` schema-valid and ``FUZZ_EXAMPLES`` schema-invalid cases
(JSON bodies, forms, parameters). Checks: schemathesis' defaults (no 5xx, status codes and
bodies as documented: every error response is documented as ``{code, message, details}``, so
``response_schema_conformance`` checks the shape of each error; invalid data refused), a
direct check of the error shape, and valid data accepted except a photo refused for its
content, which no schema can describe (bytes that are no image, a URL the SSRF guard refuses
or that does not answer): those 422s are recognised by their code, a validation error on
valid data still fails.

Network: a fuzzed URL may name any host. During the run, names never reach the resolver (only
IP literals resolve) and no socket connects to anything but loopback; a connection attempt to a
non-public address means the SSRF guard let it through and fails the test.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from engine.api.app import create_app
from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.documents import product_to_document
from engine.errors import ModelUnavailable
from engine.looks.format import load_looks
from engine.safe_fetch import is_public_address
from engine.settings import Settings
from ingest.looks import ingest_looks
from tests.conftest import SAMPLE, TEST_PREFIX
from tests.ingest.test_looks_ingest import fake_vector, sample_products

pytestmark = [pytest.mark.opensearch, pytest.mark.fuzz, pytest.mark.slow]

FUZZ_EXAMPLES = int(os.environ.get("OUTFIT_FUZZ_EXAMPLES", "25"))
# the same cases every run (CI); OUTFIT_FUZZ_RANDOM=1 explores new ones (a found bug prints
# its curl reproduction)
DERANDOMIZE = not os.environ.get("OUTFIT_FUZZ_RANDOM")
KEY = "fuzz-" + uuid.uuid4().hex
# a schema-valid photo field whose content the schema cannot judge (are these bytes an image? may
# this URL be fetched, and does it answer?): the service answers 422 with one of these codes
CONTENT_CODES = {"invalid_image", "image_fetch_failed", "url_not_allowed"}
FETCH_FAILED = "could not fetch image url"  # invalid_input: no connection (refused here)

CONNECTS: list[str] = []


# --------------------------------------------------------------------------- network guard


@pytest.fixture(scope="module")
def _loopback_only() -> Iterator[None]:
    """Names are not resolved (no DNS query leaves the machine: a fuzzed host name is unknown)
    and sockets connect to loopback only; any other attempt is refused and recorded."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name == "localhost":
            name = "127.0.0.1"
        return real_getaddrinfo(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    def allowed(address: Any) -> bool:
        if not isinstance(address, tuple):
            return False
        try:
            ip = ipaddress.ip_address(address[0])
        except ValueError:
            return False
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return ip.is_loopback

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            CONNECTS.append(str(address[0] if isinstance(address, tuple) else address))
            raise ConnectionRefusedError(f"fuzz test: no connection to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not allowed(address):
            CONNECTS.append(str(address[0] if isinstance(address, tuple) else address))
            raise ConnectionRefusedError(f"fuzz test: no connection to {address!r}")
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]


# --------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def fuzz_settings(settings: Settings) -> Settings:
    prefix = f"{TEST_PREFIX}-fz{uuid.uuid4().hex[:8]}"
    api = settings.api.model_copy(update={"admin_api_key": SecretStr(KEY)})
    cluster = settings.cluster.model_copy(update={"index_prefix": prefix})
    return settings.model_copy(update={"api": api, "cluster": cluster})


@pytest.fixture(scope="module")
def joint(settings: Settings) -> Any:
    from engine.models.joint import JointModel

    try:
        return JointModel.load(
            settings.models.joint_path, device="cpu", num_threads=settings.models.num_threads
        )
    except ModelUnavailable as exc:
        pytest.skip(f"joint model not available: {exc.message}")


def index_sample(backend: Backend, index: str) -> int:
    """The sample catalog with the deterministic vectors of the looks API tests (one for the
    text and the photo, a binary code from its signs, the sample photo's path as image): the
    plumbing is real, relevance is not the point, and it takes seconds, not an ingest run."""
    docs = []
    for p in sample_products():
        v = fake_vector(p)
        photo = SAMPLE / "images" / f"{p.id}.jpg"
        urls = [str(photo)] if photo.is_file() else []
        docs.append(
            product_to_document(
                p,
                text_embedding=v,
                image_embeddings=[v] if urls else [],
                image_urls=urls,
                binary_code=np.packbits(v > 0),
            )
        )
    ok, errors = backend.bulk(
        [{"_index": index, "_id": d["id"], "_source": d} for d in docs], refresh=True
    )
    assert not errors and ok == len(docs)
    return ok


@pytest.fixture(scope="module")
def fuzzed_cluster(cluster: Backend, fuzz_settings: Settings) -> Iterator[Backend]:
    """The sample catalog and looks under a fresh prefix with its own templates and hybrid
    pipeline; all removed afterwards."""
    c = fuzz_settings.cluster
    objects = [o for o in desired_objects(c.index_prefix) if o.kind != "stored_script"]
    apply(cluster, objects)
    try:
        cluster.ensure_index(c.products_index)
        index_sample(cluster, c.products_index)
        cluster.ensure_index(c.looks_index)
        report = ingest_looks(
            cluster,
            load_looks(SAMPLE / "looks.jsonl"),
            products_index=c.products_index,
            looks_index=c.looks_index,
            refresh=True,
        )
        assert report.indexed > 20
        yield cluster
    finally:
        for index in (c.products_index, c.looks_index, f"{c.index_prefix}-settings"):
            cluster.delete_index(index)
        cluster.delete_search_pipeline(c.hybrid_pipeline)
        for o in objects:
            if o.kind == "index_template":
                cluster.delete_index_template(o.name)


@pytest.fixture(scope="module")
def api_schema(
    _loopback_only: None, fuzzed_cluster: Backend, fuzz_settings: Settings, joint: Any
) -> Any:
    app = create_app(fuzz_settings, backend=fuzzed_cluster, loaders={"joint": lambda: joint})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    # unknown query parameters are ignored (OpenAPI does not forbid them); the key is sent
    # with every request below
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)

    @schema.hook
    def filter_case(context: Any, case: Case) -> bool:
        """Negative data goes in JSON bodies and parameters, not in forms: a form part is text,
        so a schema type violation (a number for a string, an object for a word, an empty
        list for a flag) does not survive encoding, the server reads legitimate text. Forms
        still get schema-valid data."""
        multipart = (case.media_type or "").startswith("multipart/")
        negative = case.meta is not None and not case.meta.generation.mode.is_positive
        return not (multipart and negative)

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:
        """Two cross-field rules JSON Schema cannot state, met by generated data so that the
        requests get past validation: hybrid weights sum to 1 (so weight changes are really
        made) and ``min_price <= max_price``. Values that are not in-range numbers are left
        as generated (negative data stays negative)."""
        if not isinstance(body, dict):
            return body
        hybrid = body.get("hybrid")
        if isinstance(hybrid, dict) and all(_in(hybrid.get(k), 0, 1) for k in ("bm25", "vector")):
            hybrid["vector"] = 1 - hybrid["bm25"]
        filters = body.get("filters")
        if isinstance(filters, dict):
            low, high = filters.get("min_price"), filters.get("max_price")
            if _in(low, 0, math.inf) and _in(high, 0, math.inf) and low > high:
                filters["min_price"], filters["max_price"] = high, low
        return body

    return schema


# --------------------------------------------------------------------------- checks


def _in(v: Any, low: float, high: float) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def error_shape(ctx: CheckContext, response: Any, case: Case) -> bool | None:
    """Every 4xx/5xx body is exactly ``{code, message, details}`` (belt and braces: the schema
    documents it too, and ``response_schema_conformance`` checks it)."""
    if response.status_code < 400:
        return None
    body = response.json()
    if not (
        isinstance(body, dict)
        and set(body) == {"code", "message", "details"}
        and isinstance(body["code"], str)
        and isinstance(body["message"], str)
        and isinstance(body["details"], dict)
    ):
        raise Failure(
            operation=case.operation.label,
            title="Error body not {code, message, details}",
            message=f"{response.status_code}: {response.text[:300]}",
            code="error_shape",
        )
    return True


def content_rejection(response: Any) -> bool:
    """A 422 for the photo's content, which no JSON schema can describe."""
    if response.status_code != 422:
        return False
    body = response.json()
    code, message = body.get("code"), str(body.get("message", ""))
    return code in CONTENT_CODES or (code == "invalid_input" and message.startswith(FETCH_FAILED))


def schema_valid_accepted(ctx: CheckContext, response: Any, case: Case) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, except for a photo rejected for its content
    (a validation error, ``invalid_request``, on schema-valid data still fails)."""
    if content_rejection(response):
        stats_content[case.operation.label] += 1
        return None
    return positive_data_acceptance(ctx, response, case)


stats_content: Counter[str] = Counter()  # operation -> photo rejected for its content
PER_OPERATION: Counter[str] = Counter()  # "METHOD /path status" -> responses


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(f"\n  - {describe(sub)}" for sub in exc.exceptions)
    return text


def fuzz(schema: Any, examples: int = FUZZ_EXAMPLES) -> tuple[Counter[str], dict[str, str]]:
    """Every operation, positive then negative data, ``examples`` cases each; returns the
    counts and, per failing operation and mode, the first failure."""
    stats: Counter[str] = Counter()
    failures: dict[str, str] = {}
    per_operation = PER_OPERATION
    for result in schema.get_all_operations():
        operation = result.ok()  # an unresolvable schema raises here
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=DERANDOMIZE,
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Case) -> None:
                response = case.call_and_validate(
                    headers={"X-API-Key": KEY},
                    timeout=120,  # the first search loads the text encoder
                    excluded_checks=[positive_data_acceptance],
                    additional_checks=[error_shape, schema_valid_accepted],
                )
                stats["cases"] += 1
                stats[f"status {response.status_code}"] += 1
                per_operation[f"{case.operation.label} {response.status_code}"] += 1

            label = f"{operation.label} ({mode.value})"
            start = time.perf_counter()
            try:
                run()
            except Unsatisfiable:  # no schema-invalid data exists (e.g. no parameters)
                stats[f"no negative data: {operation.label}"] += 1
            except (Exception, BaseExceptionGroup) as exc:  # keep going: report every operation
                failures[label] = describe(exc)[:4000]
            stats[f"s {label}"] = round(time.perf_counter() - start, 1)
    return stats, failures


def test_the_network_guard_holds(_loopback_only: None) -> None:
    """The safety net itself: no name is resolved, no socket reaches a non-loopback address
    (refused in Python before the system call), loopback works."""
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 80)
    with pytest.raises(ConnectionRefusedError, match="no connection"):
        socket.create_connection(("192.0.2.1", 9), timeout=1)
    assert CONNECTS == ["192.0.2.1"]
    CONNECTS.clear()
    assert socket.getaddrinfo("localhost", 9200)[0][4][0] == "127.0.0.1"


def test_api_fuzz(api_schema: Any) -> None:
    start = time.perf_counter()
    stats, failures = fuzz(api_schema)
    took = time.perf_counter() - start
    print(f"\nfuzz: {stats['cases']} cases in {took:.0f}s;", dict(sorted(stats.items())))
    print("per operation and status:", dict(sorted(PER_OPERATION.items())))
    print("photos rejected for their content:", dict(stats_content))
    print("refused connections (public addresses only may appear):", CONNECTS[:20])
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert stats["cases"] > 0
    assert not any(k.startswith("status 5") for k in stats)
    blocked = [a for a in CONNECTS if not is_public_address(a)]
    assert not blocked, f"the server tried to connect to non-public addresses: {blocked}"

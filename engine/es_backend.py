"""The one module that talks to Elasticsearch (the official ``elasticsearch`` 8.x client).

:class:`ElasticsearchBackend` has every method the services call on :class:`engine.backend.Backend`
with the same arguments, results and errors; the bodies the services build (OpenSearch dialect)
are translated by :mod:`engine.es_dialect`, and what Elasticsearch does not do server-side
here is done in this module:

* ``hybrid`` queries: the two sub-queries in one ``_msearch``, min-max normalised and combined
  by weighted arithmetic mean (:func:`engine.search.fusion.fuse`: the semantics of OpenSearch's
  normalisation processor), so merchandiser weights mean the same on both engines (the default;
  ``OUTFIT_CLUSTER__ES_HYBRID=native`` sends Elasticsearch's own boosted ``query`` + ``knn``
  instead: raw scores added, measured worse, see the README);
* search pipelines (only our hybrid weights): stored as documents of ``<prefix>-search-pipelines``;
* the coarse pass's exact cosine re-rank (numpy over the coarse hits' stored vectors);
* stored search templates: installed only when the node has lang-mustache (:meth:`supports`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from engine import es_dialect
from engine.backend import Backend
from engine.errors import ClusterRequestError, ClusterUnavailable, NotFound
from engine.queries import pipeline_weights
from engine.settings import ClusterSettings, Settings

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
PIPELINES_SUFFIX = "search-pipelines"


def es_url(settings: Settings) -> str:
    return settings.cluster.url or settings.elasticsearch_node.url


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error")
    if isinstance(err, dict):
        root = err.get("root_cause") or [err]
        first = root[0] if isinstance(root, list) and root else err
        if isinstance(first, dict):
            return f"{first.get('type', 'error')}: {first.get('reason', '')}"
    return str(exc.message)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        raise NotFound(f"{what}: not found", reason=_reason(exc)) from exc
    except ApiError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else None
        if status is not None and status > 500:
            raise ClusterUnavailable(
                f"{what}: cluster error {status}", reason=_reason(exc)
            ) from exc
        raise ClusterRequestError(
            f"{what}: rejected ({status}) {_reason(exc)}", status=status, reason=_reason(exc)
        ) from exc
    except (TransportConnectionError, ConnectionTimeout, TransportError) as exc:
        raise ClusterUnavailable(f"{what}: cluster unreachable ({exc})") from exc


class ElasticsearchBackend(Backend):
    """:class:`Backend` for an Elasticsearch 8 cluster: the methods whose client call differs
    are overridden; the others (index admin, settings, plugins, health) are Backend's own, with
    this client's errors translated by :meth:`_translate`."""

    engine = "elasticsearch"

    def __init__(self, client: Elasticsearch, cluster: ClusterSettings) -> None:  # noqa: D107
        self.client = client  # type: ignore[assignment]
        self.cluster = cluster
        self._modules: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchBackend:
        c = settings.cluster
        url = es_url(settings)
        kwargs: dict[str, Any] = {
            "request_timeout": c.timeout_s,
            "max_retries": c.max_retries,
            "retry_on_timeout": True,
            "http_compress": False,
            "connections_per_node": 8,
        }
        if c.username is not None:
            kwargs["basic_auth"] = (c.username, c.password.get_secret_value() if c.password else "")
        if url.startswith("https"):
            kwargs["verify_certs"] = c.verify_certs
            if c.ca_certs is not None:
                kwargs["ca_certs"] = str(c.ca_certs)
        return cls(Elasticsearch([url], **kwargs), c)

    @property
    def _es(self) -> Elasticsearch:
        return self.client  # type: ignore[return-value]

    def _translate(self, what: str) -> AbstractContextManager[None]:
        # the methods inherited from Backend make the same client call on both engines
        return _translate(what)

    # ------------------------------------------------------------------ cluster
    def ping(self) -> bool:
        try:
            return bool(self.cluster_health())
        except (ClusterUnavailable, ClusterRequestError):
            return False

    def wait_for_health(self, timeout_s: float = 120.0, status: str = "yellow") -> JSON:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with _translate("cluster health"):
                    health = dict(
                        self._es.options(ignore_status=408).cluster.health(
                            wait_for_status=status, timeout="5s"
                        )
                    )
                if not health.get("timed_out"):
                    return health
            except (ClusterUnavailable, ClusterRequestError) as exc:
                last = exc
            time.sleep(1.0)
        raise ClusterUnavailable(f"cluster not {status} after {timeout_s:.0f}s ({last})")

    def _local_node(self) -> JSON:
        with _translate("nodes info"):
            res = dict(self._es.nodes.info(node_id="_local"))
        return dict(next(iter(res.get("nodes", {}).values()), {})) | {
            "cluster_name": res.get("cluster_name")
        }

    def info(self) -> JSON:
        """``GET /``'s shape, from ``GET /_nodes/_local`` (no rest-root module: ``/`` is 405)."""
        node = self._local_node()
        return {
            "name": node.get("name"),
            "cluster_name": node.get("cluster_name"),
            "version": {
                "number": node.get("version"),
                "distribution": "elasticsearch",
                "build_flavor": node.get("build_flavor"),
            },
        }

    def modules(self) -> frozenset[str]:
        """The node's modules (what this distribution can do), read once."""
        if self._modules is None:
            node = self._local_node()
            with _translate("nodes plugins"):
                res = dict(self._es.nodes.info(node_id="_local", metric="plugins"))
            mods = {m["name"] for n in res.get("nodes", {}).values() for m in n.get("modules", [])}
            self._modules = frozenset(mods) if node else frozenset()
        return self._modules

    def supports(self, kind: str) -> bool:
        """Whether a config object kind can be installed: stored (mustache) templates need the
        lang-mustache module; the search pipeline (weights) is stored by this backend."""
        if kind == "stored_script":
            return "lang-mustache" in self.modules()
        return True

    # ------------------------------------------------------------------ config objects
    def put_index_template(self, name: str, body: JSON) -> None:
        """``body``: our (OpenSearch) template, translated by :func:`es_dialect.index_template`."""
        es_body = es_dialect.index_template(
            body, analysis_common="analysis-common" in self.modules()
        )
        with _translate(f"put index template {name}"):
            self._es.indices.put_index_template(name=name, body=es_body)

    @property
    def pipelines_index(self) -> str:
        return f"{self.cluster.index_prefix}-{PIPELINES_SUFFIX}"

    def get_search_pipeline(self, name: str) -> JSON | None:
        try:
            with _translate(f"get search pipeline {name}"):
                res = self._es.get(index=self.pipelines_index, id=name)
        except NotFound:
            return None
        return dict(json.loads(res["_source"]["body"]))

    def put_search_pipeline(self, name: str, body: JSON) -> None:
        self.ensure_index(
            self.pipelines_index,
            {
                "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
                "mappings": {
                    "dynamic": False,
                    "properties": {"body": {"type": "keyword", "index": False}},
                },
            },
        )
        with _translate(f"put search pipeline {name}"):
            self._es.index(
                index=self.pipelines_index,
                id=name,
                document={"body": json.dumps(body, sort_keys=True)},
                refresh=True,
            )

    def delete_search_pipeline(self, name: str) -> None:
        with _translate(f"delete search pipeline {name}"):
            self._es.delete(index=self.pipelines_index, id=name, refresh=True)

    def get_stored_script(self, script_id: str) -> JSON | None:
        try:
            with _translate(f"get stored script {script_id}"):
                res = self._es.get_script(id=script_id)
        except NotFound:
            return None
        return dict(res.get("script", {})) if res.get("found", True) else None

    def put_stored_script(self, script_id: str, body: JSON) -> None:
        with _translate(f"put stored script {script_id}"):
            self._es.put_script(id=script_id, script=body["script"])

    # ------------------------------------------------------------------ indices
    def ensure_index(self, index: str, body: JSON | None = None) -> bool:
        if self.index_exists(index):
            return False
        try:
            self.create_index(index, body)
        except ClusterRequestError as exc:
            if "resource_already_exists" in str(exc.details.get("reason", "")):
                return False
            raise
        return True

    def count(self, index: str, query: JSON | None = None) -> int:
        with _translate(f"count {index}"):
            q = es_dialect.query(query) if query else None
            return int(self._es.count(index=index, query=q)["count"])

    def mapped_fields(self, index: str, fields: list[str]) -> set[str]:
        """Which of ``fields`` the index maps (``_field_caps``). The names go as a list: the
        8.x client sends ``fields`` in the body, where ``"a,b"`` is one (unmapped) name."""
        if not fields:
            return set()
        with _translate(f"field caps {index}"):
            res = self._es.field_caps(index=index, fields=list(fields))
        return set(res.get("fields", {})) & set(fields)

    # ------------------------------------------------------------------ documents
    def get(self, index: str, doc_id: str, source_excludes: list[str] | None = None) -> JSON:
        with _translate(f"get {index}/{doc_id}"):
            res = self._es.get(index=index, id=doc_id, source_excludes=source_excludes)
        return dict(res["_source"])

    def mget(
        self, index: str, ids: list[str], source_excludes: list[str] | None = None
    ) -> dict[str, JSON]:
        if not ids:
            return {}
        with _translate(f"mget {index}"):
            res = self._es.mget(index=index, ids=ids, source_excludes=source_excludes)
        return {d["_id"]: d["_source"] for d in res["docs"] if d.get("found")}

    def get_source(self, index: str, doc_id: str, includes: list[str]) -> JSON:
        with _translate(f"get {index}/{doc_id}"):
            res = self._es.get(index=index, id=doc_id, source_includes=includes)
        return dict(res.get("_source") or {})

    def index_doc(self, index: str, doc_id: str, doc: JSON, refresh: bool = False) -> None:
        with _translate(f"index {index}/{doc_id}"):
            self._es.index(index=index, id=doc_id, document=doc, refresh=refresh)

    def create_doc(self, index: str, doc_id: str, doc: JSON, refresh: bool = True) -> None:
        with _translate(f"create {index}/{doc_id}"):
            self._es.create(index=index, id=doc_id, document=doc, refresh=refresh)

    def iter_ids(self, index: str, fields: list[str] | None = None) -> Iterator[tuple[str, JSON]]:
        with _translate(f"scan {index}"):
            for hit in helpers.scan(
                self._es,
                index=index,
                query={"query": {"match_all": {}}, "_source": fields or False},
                size=1000,
            ):
                yield hit["_id"], hit.get("_source", {})

    def bulk(
        self,
        actions: Iterable[Mapping[str, Any]],
        *,
        refresh: bool = False,
        max_retries: int = 5,
        initial_backoff_s: float = 1.0,
    ) -> tuple[int, list[JSON]]:
        batch = list(actions)
        if not batch:
            return 0, []
        attempt = 0
        while True:
            try:
                ok, errors = helpers.bulk(
                    self._es,
                    batch,
                    raise_on_error=False,
                    raise_on_exception=True,
                    refresh=refresh,
                    max_retries=max_retries,
                    initial_backoff=initial_backoff_s,
                )
                return int(ok), [dict(e) for e in errors]  # type: ignore[union-attr]
            except (TransportConnectionError, ConnectionTimeout) as exc:
                attempt += 1
                if attempt > max_retries:
                    raise ClusterUnavailable(
                        f"bulk indexing: cluster unreachable after {max_retries} retries"
                    ) from exc
                delay = initial_backoff_s * 2 ** (attempt - 1)
                logger.warning(
                    "bulk: cluster unreachable (%s); retry %d in %.1fs", exc, attempt, delay
                )
                time.sleep(delay)
            except ApiError as exc:
                raise ClusterRequestError(f"bulk rejected: {_reason(exc)}") from exc

    # ------------------------------------------------------------------ search
    def _translated(self, index: str, body: JSON) -> JSON:
        fields = es_dialect.soft_fields(body)
        mapped = self.mapped_fields(index, fields) if fields else None
        return es_dialect.search_body(body, mapped)

    def _raw_search(self, index: str, body: JSON) -> JSON:
        with _translate(f"search {index}"):
            return dict(self._es.search(index=index, body=body))

    def search(
        self,
        index: str,
        body: JSON,
        *,
        search_pipeline: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Search with an OpenSearch-dialect body. ``search_pipeline`` matters for ``hybrid``
        bodies only (its weights; ``"_none"`` and None elsewhere); ``params`` are not sent."""
        q = body.get("query") or {}
        if "hybrid" in q:
            return self._hybrid(index, body, search_pipeline)
        rr = es_dialect.exact_rerank(body)
        if rr is not None:
            return self._exact_rerank(index, body, rr)
        return self._raw_search(index, self._translated(index, body))

    def _hybrid_weights(self, body: JSON, pipeline: str | None) -> tuple[float, float]:
        """The weights of the body's temporary pipeline, else of the named stored one."""
        temp = body.get("search_pipeline")
        stored = None
        if not isinstance(temp, dict) and pipeline and pipeline != "_none":
            stored = self.get_search_pipeline(pipeline)
        w = pipeline_weights(temp if isinstance(temp, dict) else stored)
        if w is None:
            reason = f"hybrid query without a normalization pipeline ({pipeline} not found)"
            raise ClusterRequestError(f"search: rejected (400) {reason}", status=400, reason=reason)
        return w

    def _hybrid(self, index: str, body: JSON, pipeline: str | None) -> JSON:
        weights = self._hybrid_weights(body, pipeline)
        if self.cluster.es_hybrid == "native":
            return self._raw_search(index, es_dialect.native_hybrid_body(body, weights))
        bodies, _depth, size = es_dialect.hybrid_parts(body)
        return es_dialect.fuse_responses(self._msearch_raw(index, bodies), weights, size)

    def _exact_rerank(self, index: str, body: JSON, rr: tuple[JSON, str, list[float], int]) -> JSON:
        coarse, field, qv, size = rr
        src = body.get("_source")
        keep = field in ((src or {}).get("includes", []) if isinstance(src, dict) else [])
        return es_dialect.rerank_exact(self._raw_search(index, coarse), field, qv, size, keep)

    def search_template(
        self, index: str, template_id: str, params: JSON, *, search_pipeline: str | None = None
    ) -> JSON:
        with _translate(f"search template {template_id}"):
            return dict(self._es.search_template(index=index, id=template_id, params=params))

    def render_template(self, template_id: str, params: JSON) -> JSON:
        with _translate(f"render template {template_id}"):
            res = self._es.render_search_template(id=template_id, params=params)
        return dict(res["template_output"])

    def _msearch_raw(self, index: str, bodies: list[JSON]) -> list[JSON]:
        lines: list[JSON] = []
        for body in bodies:
            lines.append({"index": index})
            lines.append(body)
        with _translate(f"msearch {index}"):
            res = self._es.msearch(searches=lines)
        out: list[JSON] = []
        for item in res.get("responses", []):
            if "error" in item:
                err = item["error"]
                reason = err.get("reason", str(err)) if isinstance(err, dict) else str(err)
                kind = err.get("type") if isinstance(err, dict) else None
                if kind == "index_not_found_exception":  # as Backend.msearch: NotFound
                    raise NotFound(f"msearch {index}: not found", reason=reason)
                raise ClusterRequestError(
                    f"msearch {index}: rejected {reason}", status=item.get("status"), reason=reason
                )
            out.append(dict(item))
        return out

    def msearch(self, index: str, bodies: list[JSON]) -> list[JSON]:
        if not bodies:
            return []
        plain = all("hybrid" not in (b.get("query") or {}) and "rescore" not in b for b in bodies)
        if not plain:  # rare: each on its own
            return [self.search(index, b) for b in bodies]
        return self._msearch_raw(index, [self._translated(index, b) for b in bodies])

    # ------------------------------------------------------------------ LTR / stats
    def ltr_request(
        self, method: str, path: str, body: JSON | None = None, *, ok_if_exists: bool = False
    ) -> JSON:
        raise ClusterRequestError(
            "the Learning-to-Rank plugin is not available on Elasticsearch here; "
            "the LTR re-rank runs in the service (engine.ltr)",
            status=400,
            reason="no _ltr plugin",
        )

"""The one module that talks to OpenSearch.

Everything else builds request bodies with pure functions and calls this module. Transport
failures become :class:`ClusterUnavailable`; rejected requests become
:class:`ClusterRequestError` (or :class:`NotFound`), with the server's reason in ``details``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy import exceptions as os_exc

from engine.backend_errors import domain_error as _domain_error
from engine.backend_errors import translate
from engine.errors import (
    ClusterAuthError,
    ClusterForbidden,
    ClusterRequestError,
    ClusterUnavailable,
    NotFound,
)
from engine.queries import term_counts_body
from engine.settings import ClusterSettings, Settings

logger = logging.getLogger(__name__)

JSON = dict[str, Any]


# a request that meets one of these (a node going away, a cluster manager being re-elected) is
# sent again, to the next node, up to ``ClusterSettings.max_retries`` times
RETRY_ON_STATUS = (502, 503, 504)


class Backend:
    """Thin, typed wrapper over opensearch-py with our error model. The Elasticsearch one is
    :class:`engine.es_backend.ElasticsearchBackend`; :func:`engine.engines.connect` picks."""

    engine = "opensearch"

    def __init__(self, client: OpenSearch, cluster: ClusterSettings) -> None:
        self.client = client
        self.cluster = cluster

    def _translate(self, what: str) -> AbstractContextManager[None]:
        """The client's errors during ``what`` as :mod:`engine.errors` (an engine's backend
        overrides this with its client's exceptions and inherits every method that calls the
        same client API)."""
        return translate(what)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backend:
        c = settings.cluster
        hosts = settings.cluster_hosts()
        url = hosts[0]
        kwargs: dict[str, Any] = {
            # every configured node: a request that fails on one (connection error, timeout,
            # 502/503/504) is retried on the next, the failed node is left alone for a while
            "hosts": hosts,
            "timeout": c.timeout_s,
            "max_retries": c.max_retries,
            "retry_on_timeout": True,
            "retry_on_status": RETRY_ON_STATUS,
            # the configured addresses are the ones to use (a node's published address may not
            # be reachable from here): no sniffing
            "sniff_on_start": False,
            "sniff_on_connection_fail": False,
            "sniffer_timeout": None,
            "http_compress": False,
            # ingest (lookup + indexing threads) and the API share one client
            "pool_maxsize": 8,
        }
        if c.username is not None:
            password = c.password.get_secret_value() if c.password else ""
            kwargs["http_auth"] = (c.username, password)
        if url.startswith("https"):
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = c.verify_certs
            kwargs["ssl_show_warn"] = c.verify_certs
            if c.ca_certs is not None:
                kwargs["ca_certs"] = str(c.ca_certs)
        return cls(OpenSearch(**kwargs), c)

    # ------------------------------------------------------------------ cluster
    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except os_exc.TransportError:
            return False

    def wait_for_health(self, timeout_s: float = 120.0, status: str = "yellow") -> JSON:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with self._translate("cluster health"):
                    # server-side wait in the URL: opensearch-py treats a "timeout" param
                    # as its own request timeout
                    health: JSON = self.client.transport.perform_request(
                        "GET", f"/_cluster/health?wait_for_status={status}&timeout=5s"
                    )
                if not health.get("timed_out"):
                    return health
            except (ClusterAuthError, ClusterForbidden):
                raise  # waiting does not fix credentials
            except (ClusterUnavailable, ClusterRequestError) as exc:
                last = exc
            time.sleep(1.0)
        raise ClusterUnavailable(f"cluster not {status} after {timeout_s:.0f}s ({last})")

    def info(self) -> JSON:
        with self._translate("cluster info"):
            return dict(self.client.info())

    def cluster_health(self) -> JSON:
        """``GET /_cluster/health`` now (no waiting; see :meth:`wait_for_health`)."""
        with self._translate("cluster health"):
            return dict(self.client.cluster.health())

    def data_nodes(self) -> int:
        """How many data nodes the cluster has now."""
        return int(self.cluster_health().get("number_of_data_nodes", 1))

    def shard_copies(self, index: str) -> list[JSON]:
        """Where the copies of an index's shards are: one row per copy (``shard``, ``prirep``
        ``p``/``r``, ``state``, ``node`` name)."""
        with self._translate(f"shards of {index}"):
            rows = self.client.cat.shards(index=index, format="json", h="shard,prirep,state,node")
        return [dict(r) for r in rows]

    def supports(self, kind: str) -> bool:
        """Whether config objects of ``kind`` (engine.config.desired.Kind) can be installed."""
        return True

    def plugins(self) -> set[str]:
        with self._translate("list plugins"):
            rows = self.client.cat.plugins(format="json")
        return {r["component"] for r in rows}

    # ------------------------------------------------------------------ config objects
    def get_index_template(self, name: str) -> JSON | None:
        try:
            with self._translate(f"get index template {name}"):
                res = self.client.indices.get_index_template(name=name)
        except NotFound:
            return None
        items = res.get("index_templates", [])
        return dict(items[0]["index_template"]) if items else None

    def put_index_template(self, name: str, body: JSON) -> None:
        with self._translate(f"put index template {name}"):
            self.client.indices.put_index_template(name=name, body=body)

    def delete_index_template(self, name: str) -> None:
        with self._translate(f"delete index template {name}"):
            self.client.indices.delete_index_template(name=name)

    def get_search_pipeline(self, name: str) -> JSON | None:
        try:
            with self._translate(f"get search pipeline {name}"):
                res = self.client.search_pipeline.get(id=name)
        except NotFound:
            return None
        return dict(res[name]) if isinstance(res, dict) and name in res else None

    def put_search_pipeline(self, name: str, body: JSON) -> None:
        with self._translate(f"put search pipeline {name}"):
            self.client.search_pipeline.put(id=name, body=body)

    def get_stored_script(self, script_id: str) -> JSON | None:
        try:
            with self._translate(f"get stored script {script_id}"):
                res = self.client.get_script(id=script_id)
        except NotFound:
            return None
        if not res.get("found", True):
            return None
        return dict(res.get("script", {}))

    def put_stored_script(self, script_id: str, body: JSON) -> None:
        with self._translate(f"put stored script {script_id}"):
            self.client.put_script(id=script_id, body=body)

    # ------------------------------------------------------------------ indices
    def index_exists(self, index: str) -> bool:
        with self._translate(f"check index {index}"):
            return bool(self.client.indices.exists(index=index))

    def create_index(self, index: str, body: JSON | None = None) -> None:
        with self._translate(f"create index {index}"):
            self.client.indices.create(index=index, body=body or {})

    def ensure_index(self, index: str) -> bool:
        """Create the index (templates give it its mappings) unless it exists; True if created."""
        if self.index_exists(index):
            return False
        try:
            self.create_index(index)
        except ClusterRequestError as exc:
            if "resource_already_exists" in str(exc.details.get("reason", "")):
                return False
            raise
        return True

    def delete_index(self, index: str) -> None:
        with self._translate(f"delete index {index}"):
            self.client.indices.delete(index=index, ignore_unavailable=True)

    def get_mapping(self, index: str) -> JSON:
        with self._translate(f"get mapping {index}"):
            return dict(self.client.indices.get_mapping(index=index))

    def get_settings(self, index: str) -> JSON:
        with self._translate(f"get settings {index}"):
            return dict(self.client.indices.get_settings(index=index))

    def put_settings(self, index: str, body: JSON) -> None:
        """Update dynamic index settings (a ``None`` value resets one to its default)."""
        with self._translate(f"put settings {index}"):
            self.client.indices.put_settings(index=index, body=body)

    def force_merge(self, index: str, max_segments: int = 1) -> None:
        """Merge ``index`` down to ``max_segments`` segments per shard (after a bulk load: one
        HNSW graph and one term dictionary per segment to search; blocks until done)."""
        with self._translate(f"force merge {index}"):
            self.client.indices.forcemerge(index=index, max_num_segments=int(max_segments))

    @contextmanager
    def refresh_interval(self, index: str, interval: str | None) -> Iterator[None]:
        """Refresh ``index`` every ``interval`` (bulk loading: fewer, bigger segments) inside the
        block, then put its own interval back; ``None`` = leave the index as it is.

        A value equal to ``interval`` found on the index is taken as left behind by an
        interrupted run and reset to the cluster default. When the operator switched refreshes
        off (``-1``) nothing is changed. On an error inside the block the restore is attempted
        and its own cluster error dropped (the block's error is the one that matters); after a
        clean block a failing restore raises."""
        if interval is None:
            yield
            return
        current = (
            self.get_settings(index)
            .get(index, {})
            .get("settings", {})
            .get("index", {})
            .get("refresh_interval")
        )
        if current == "-1":
            yield
            return
        self.put_settings(index, {"index": {"refresh_interval": interval}})
        original = None if current in (None, interval) else current
        try:
            yield
        except BaseException:
            try:
                self.put_settings(index, {"index": {"refresh_interval": original}})
            except (ClusterUnavailable, ClusterRequestError) as exc:
                logger.warning("could not restore the refresh interval of %s: %s", index, exc)
            raise
        self.put_settings(index, {"index": {"refresh_interval": original}})

    def refresh(self, index: str) -> None:
        with self._translate(f"refresh {index}"):
            self.client.indices.refresh(index=index)

    def count(self, index: str, query: JSON | None = None) -> int:
        with self._translate(f"count {index}"):
            body = {"query": query} if query else None
            return int(self.client.count(index=index, body=body)["count"])

    def term_counts(self, index: str, field: str, size: int = 1000) -> dict[str, int]:
        """Documents per value of a keyword field (the top ``size`` values)."""
        with self._translate(f"term counts {index}.{field}"):
            res = self.client.search(index=index, body=term_counts_body(field, size))
        buckets = res.get("aggregations", {}).get("values", {}).get("buckets", [])
        return {str(b["key"]): int(b["doc_count"]) for b in buckets}

    # ------------------------------------------------------------------ documents
    def get(self, index: str, doc_id: str, source_excludes: list[str] | None = None) -> JSON:
        with self._translate(f"get {index}/{doc_id}"):
            res = self.client.get(index=index, id=doc_id, _source_excludes=source_excludes)
        return dict(res["_source"])

    def mget(
        self, index: str, ids: list[str], source_excludes: list[str] | None = None
    ) -> dict[str, JSON]:
        if not ids:
            return {}
        with self._translate(f"mget {index}"):
            res = self.client.mget(index=index, body={"ids": ids}, _source_excludes=source_excludes)
        return {d["_id"]: d["_source"] for d in res["docs"] if d.get("found")}

    def index_doc(self, index: str, doc_id: str, doc: JSON, refresh: bool = False) -> None:
        with self._translate(f"index {index}/{doc_id}"):
            self.client.index(index=index, id=doc_id, body=doc, refresh=refresh)

    def iter_ids(self, index: str, fields: list[str] | None = None) -> Iterator[tuple[str, JSON]]:
        """Scan every document (id, selected source fields)."""
        with self._translate(f"scan {index}"):
            for hit in helpers.scan(
                self.client,
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
        """Send bulk actions; retry transport failures and 429s with backoff.

        Returns (number succeeded, per-item errors). Raises ClusterUnavailable when the
        cluster stays unreachable after ``max_retries``.
        """
        batch = list(actions)
        if not batch:
            return 0, []
        attempt = 0
        while True:
            try:
                ok, errors = helpers.bulk(
                    self.client,
                    batch,
                    raise_on_error=False,
                    raise_on_exception=True,
                    refresh=refresh,
                    max_retries=max_retries,
                    initial_backoff=initial_backoff_s,
                )
                return int(ok), [dict(e) for e in errors]  # type: ignore[union-attr]
            except (os_exc.ConnectionError, os_exc.ConnectionTimeout) as exc:
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
            except os_exc.TransportError as exc:
                raise _domain_error("bulk rejected", exc) from exc

    # ------------------------------------------------------------------ search
    def search(
        self,
        index: str,
        body: JSON,
        *,
        search_pipeline: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> JSON:
        p: dict[str, Any] = dict(params or {})
        if search_pipeline:
            p["search_pipeline"] = search_pipeline
        with self._translate(f"search {index}"):
            return dict(self.client.search(index=index, body=body, params=p))

    def search_template(
        self, index: str, template_id: str, params: JSON, *, search_pipeline: str | None = None
    ) -> JSON:
        p = {"search_pipeline": search_pipeline} if search_pipeline else None
        with self._translate(f"search template {template_id}"):
            return dict(
                self.client.search_template(
                    index=index, body={"id": template_id, "params": params}, params=p
                )
            )

    def render_template(self, template_id: str, params: JSON) -> JSON:
        with self._translate(f"render template {template_id}"):
            res = self.client.render_search_template(body={"id": template_id, "params": params})
        return dict(res["template_output"])

    # ------------------------------------------------------------------ search (appended: search)
    def msearch(self, index: str, bodies: list[JSON]) -> list[JSON]:
        """Several searches in one round trip; a failed one raises ClusterRequestError (NotFound
        for a missing index).

        ``_msearch`` takes no ``search_pipeline`` (OpenSearch 2.19): the index's default
        pipeline applies, which leaves non-hybrid queries unchanged."""
        if not bodies:
            return []
        lines: list[JSON] = []
        for body in bodies:
            lines.append({"index": index})
            lines.append(body)
        with self._translate(f"msearch {index}"):
            res = self.client.msearch(body=lines)
        out: list[JSON] = []
        for item in res.get("responses", []):
            if "error" in item:
                err = item["error"]
                reason = err.get("reason", str(err)) if isinstance(err, dict) else str(err)
                if item.get("status") == 404:  # a missing index, as search() says it
                    raise NotFound(f"msearch {index}: not found", reason=reason)
                raise ClusterRequestError(
                    f"msearch {index}: rejected {reason}", status=item.get("status"), reason=reason
                )
            out.append(dict(item))
        return out

    def get_source(self, index: str, doc_id: str, includes: list[str]) -> JSON:
        """Selected source fields of one document (NotFound when it does not exist)."""
        with self._translate(f"get {index}/{doc_id}"):
            res = self.client.get(index=index, id=doc_id, _source_includes=includes)
        return dict(res.get("_source") or {})

    # ------------------------------------------------------------------ tuning / LTR (issue 8)
    def delete_search_pipeline(self, name: str) -> None:
        with self._translate(f"delete search pipeline {name}"):
            self.client.search_pipeline.delete(id=name)

    def create_doc(self, index: str, doc_id: str, doc: JSON, refresh: bool = True) -> None:
        """Index ``doc`` only if ``doc_id`` does not exist (409 -> ClusterRequestError)."""
        with self._translate(f"create {index}/{doc_id}"):
            self.client.create(index=index, id=doc_id, body=doc, refresh=refresh)

    def delete_doc(self, index: str, doc_id: str, refresh: bool = True) -> None:
        with self._translate(f"delete {index}/{doc_id}"):
            self.client.delete(index=index, id=doc_id, refresh=refresh)

    def ltr_upload(self, name: str, featureset: JSON, model: JSON) -> None:
        """Store a featureset and a model made from it in the Learning-to-Rank plugin's default
        store (created when missing); the plugin must be installed."""
        ltr = self.client.plugins.ltr
        try:
            with self._translate("LTR create store"):
                ltr.create_default_store()
        except ClusterRequestError as exc:
            if "already" not in str(exc.details.get("reason", "")).lower():
                raise
        with self._translate(f"LTR featureset {name}"):
            ltr.create_featureset(id=name, body=featureset)
        with self._translate(f"LTR model from {name}"):
            ltr.create_model_from_set(name=name, body=model)

    # ------------------------------------------------------------------ stats (ingest)
    def nodes_cpu_millis(self) -> int:
        """Total CPU time (ms) the cluster's node processes have used (``_nodes/stats/process``)."""
        with self._translate("nodes stats"):
            res = self.client.nodes.stats(metric="process")
        return sum(
            int(node.get("process", {}).get("cpu", {}).get("total_in_millis", 0))
            for node in res.get("nodes", {}).values()
        )

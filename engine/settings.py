"""One typed settings object, built at entry points and passed down.

Library code never reads ``os.environ``: entry points call :func:`load_settings`
(environment variables prefixed ``OUTFIT_``, or a ``.env``-style file) and hand the
result to whatever they construct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "fashion-product-images"
SAMPLE_DIR = PROJECT_ROOT / "sample"


Engine = Literal["opensearch", "elasticsearch"]


class ClusterSettings(BaseModel):
    """How to reach the cluster. ``url=None`` means: provision and use the local node (of
    ``engine``: OpenSearch unless ``elasticsearch`` is set). With a URL and no ``engine`` the
    engine is detected from the cluster (:func:`engine.engines.detect_engine`).

    ``url`` may list several nodes of one cluster, comma-separated
    (``http://127.0.0.1:9211,http://127.0.0.1:9212``): the client spreads requests over them and
    retries a request on another node on connection errors, timeouts and 502/503/504."""

    url: str | None = None
    engine: Engine | None = None
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    index_prefix: str = Field(default="outfit", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    # Elasticsearch only: how a hybrid query is combined. "fusion": both lists min-max
    # normalised and weighted-averaged in the backend (OpenSearch's normalisation processor, so
    # the merchandiser's weights mean the same on both engines); "native": one request with
    # Elasticsearch's boosted query + knn (raw scores added). Measured in the README.
    es_hybrid: Literal["fusion", "native"] = "fusion"

    @field_validator("url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        hosts = [h.strip() for h in v.split(",") if h.strip()]
        for h in hosts:
            if not h.startswith(("http://", "https://")):
                raise ValueError(f"cluster URL {h!r} must start with http:// or https://")
        if len({h.split("://", 1)[0] for h in hosts}) > 1:
            raise ValueError("cluster URLs must all be http or all https")
        return ",".join(hosts)

    @property
    def hosts(self) -> list[str]:
        """The configured node URLs (empty when none is configured)."""
        return self.url.split(",") if self.url else []

    @property
    def products_index(self) -> str:
        return f"{self.index_prefix}-products"

    @property
    def looks_index(self) -> str:
        return f"{self.index_prefix}-looks"

    @property
    def hybrid_pipeline(self) -> str:
        return f"{self.index_prefix}-hybrid"


class LocalNodeSettings(BaseModel):
    """The node our provisioner runs when no cluster URL is configured."""

    version: str = "2.19.1"
    plugin_version: str = "2.19.1.0"
    home: Path = PROJECT_ROOT / ".local-opensearch"
    port: int = Field(default=9200, ge=1024, le=65535)
    transport_port: int = Field(default=9300, ge=1024, le=65535)
    heap: str = Field(default="1g", pattern=r"^\d+[mg]$")
    java_home: Path | None = None
    user: str = "opensearch"
    start_timeout_s: float = 180.0
    mvn: str = "mvn"
    # TLS on HTTP and transport plus basic auth (the security plugin; engine.cluster.secure)
    secure: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"


class SecureNodeSettings(LocalNodeSettings):
    """``python -m engine.cluster up --secure``: a separate node with the security plugin (TLS,
    basic auth, users and roles; engine.cluster.secure). Its own defaults, so that overriding
    one field (``OUTFIT_SECURE_NODE__HOME``) keeps the others."""

    home: Path = PROJECT_ROOT / ".local-opensearch-secure"
    port: int = Field(default=9221, ge=1024, le=65535)
    transport_port: int = Field(default=9321, ge=1024, le=65535)
    heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    secure: bool = True


class LocalClusterSettings(BaseModel):
    """The multi-node loopback cluster (``python -m engine.cluster up --nodes 3``).

    Node ``i`` (0-based) listens on ``http_base_port + i`` / ``transport_base_port + i``; it
    shares the local node's installation and keeps its own config, data and logs under
    ``<local_node.home>/<name>/node-<i+1>``. The single node keeps its own ports (9200/9300)."""

    name: str = Field(default="cluster", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    nodes: int = Field(default=3, ge=2, le=9)
    http_base_port: int = Field(default=9211, ge=1024, le=65500)
    transport_base_port: int = Field(default=9311, ge=1024, le=65500)
    heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    start_timeout_s: float = 240.0

    def http_port(self, i: int) -> int:
        return self.http_base_port + i

    def transport_port(self, i: int) -> int:
        return self.transport_base_port + i

    def urls(self, nodes: int | None = None) -> list[str]:
        return [f"http://127.0.0.1:{self.http_port(i)}" for i in range(nodes or self.nodes)]


class ElasticsearchNodeSettings(LocalNodeSettings):
    """The local Elasticsearch node (``python -m engine.cluster up --engine elasticsearch``):
    the Maven ``integ-test-zip`` distribution, on its own ports so both engines can run."""

    version: str = "8.19.0"
    plugin_version: str = ""  # no plugins: the distribution's own modules only
    home: Path = PROJECT_ROOT / ".local-elasticsearch"
    port: int = Field(default=9250, ge=1024, le=65535)
    transport_port: int = Field(default=9350, ge=1024, le=65535)
    user: str = "elasticsearch"


class ModelSettings(BaseModel):
    """Where encoders and trained heads live; ``device='auto'`` picks CUDA when present."""

    device: str = "auto"
    # a model bundle directory written by `python -m engine fit` (joint.pt, compat.pt,
    # manifest.json); None = the bundle shipped in engine/models/weights/
    bundle: Path | None = None
    joint_checkpoint: Path | None = None  # overrides the bundle's joint.pt
    compat_checkpoint: Path | None = None  # overrides the bundle's compat.pt
    clip_checkpoint: Path | None = None  # a local Hugging Face CLIP-style directory
    batch_size: int = Field(default=32, ge=1)
    num_threads: int | None = None
    # run the frozen backbones with ONNX Runtime on CPU when it is installed and its outputs
    # match PyTorch (engine.models.accel); ~3x faster image and query-text encoding
    onnx: bool = True
    # catalog documents' text side at ingest: "static" = the static-token encoder distilled from
    # MiniLM (engine.models.static_text; <1 ms vs ~46 ms of CPU per product, measured in its
    # metrics file), "minilm" = MiniLM itself.
    document_text_encoder: Literal["static", "minilm"] = "static"
    # query texts' side at search time, the same two choices (engine.search.query_encoder);
    # static by default: 44k catalog, test split, text nDCG@10 0.916 vs 0.905 with MiniLM,
    # compose MM-nDCG 0.5375 vs 0.5371, photo P@10 unchanged (docs/PERFORMANCE.md)
    query_text_encoder: Literal["static", "minilm"] = "static"
    static_text_weights: Path | None = None  # default: the weights shipped in the package

    @property
    def joint_path(self) -> Path | None:
        """The joint checkpoint to load (a file, or a bundle directory holding joint.pt)."""
        return self.joint_checkpoint or self.bundle

    @property
    def compat_path(self) -> Path | None:
        """The compatibility checkpoint (a file, or a bundle directory holding compat.pt)."""
        return self.compat_checkpoint or self.bundle


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    admin_api_key: SecretStr | None = None
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # an uploaded JPEG whose shorter side is >= 2x this is decoded downscaled by the decoder
    # (DCT scaling) to at least this many pixels a side; None = always decode at full size
    upload_draft_size: int | None = Field(default=448, ge=64)
    # hits of each hybrid sub-query normalised and combined (OpenSearch pagination_depth),
    # whatever the page size; 0 = only as deep as the page. Deeper: better text ranking, slower
    # (see engine.search.service.SearchOptions.hybrid_depth for measured trade-offs).
    search_hybrid_depth: int = Field(default=60, ge=0, le=10_000)
    # torch intra-op threads of the API process (0: torch's default, one per core). The torch
    # parts of a query are tiny (joint heads, attribute heads, the static text encoder: well
    # under 1 ms on one thread) and on a busy 2-core machine a 2-thread pool costs ~30 ms per
    # call in synchronisation (measured, docs/PERFORMANCE.md). ONNX backbones keep their own.
    torch_threads: int = Field(default=1, ge=0, le=256)
    # uvicorn worker processes of ``python -m engine serve``. One process runs the Python part
    # of every request under one interpreter lock; more workers serve requests in parallel, each
    # with its own models (1.2-1.4 GB resident each, measured). Shared state lives in the cluster
    # (weights, blend versions), so workers agree; each re-reads the live blend every few
    # seconds. On a 2-core machine shared with the node, 2 workers measured no better than 1
    # (docs/PERFORMANCE.md): give workers the cores the node does not need.
    workers: int = Field(default=1, ge=1, le=64)
    # uvicorn's HTTP parser and event loop. "auto" takes the C ones (httptools, uvloop: core
    # dependencies) where they import, else the pure-Python h11 and asyncio; the C pair costs
    # the API less CPU per request (docs/PERFORMANCE.md, "HTTP server").
    http: Literal["auto", "httptools", "h11"] = "auto"
    loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # photo URLs sent to the API are fetched only from public addresses; these host names, IPs
    # or CIDR networks are let through anyway (engine.safe_fetch). JSON list from the env.
    url_allowed_hosts: list[str] = []

    def server_options(self) -> dict[str, str]:
        """uvicorn.run's ``http`` and ``loop`` arguments."""
        return {"http": self.http, "loop": self.loop}

    @field_validator("url_allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return _check_allowed_hosts(v)


class IngestSettings(BaseModel):
    # catalog image URLs are fetched only from public addresses; list internal image hosts
    # (names, IPs or CIDR networks) here, e.g. '["images.internal", "10.20.0.0/16"]'
    url_allowed_hosts: list[str] = []

    @field_validator("url_allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return _check_allowed_hosts(v)


def _check_allowed_hosts(entries: list[str]) -> list[str]:
    from engine.safe_fetch import HostAllowList

    HostAllowList.parse(entries)  # ValueError on an entry that is neither a name nor an IP/CIDR
    return entries


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OUTFIT_",
        env_nested_delimiter="__",
        env_file=None,
        extra="ignore",
    )

    cluster: ClusterSettings = ClusterSettings()
    local_node: LocalNodeSettings = LocalNodeSettings()
    secure_node: SecureNodeSettings = SecureNodeSettings()
    local_cluster: LocalClusterSettings = LocalClusterSettings()
    elasticsearch_node: ElasticsearchNodeSettings = ElasticsearchNodeSettings()
    models: ModelSettings = ModelSettings()
    api: ApiSettings = ApiSettings()
    ingest: IngestSettings = IngestSettings()
    shared_data: Path = DEFAULT_SHARED_DATA
    sample_dir: Path = SAMPLE_DIR

    def cluster_hosts(self) -> list[str]:
        """Every node the client may send to: the configured ones, or the local node's (of the
        configured engine) when none is."""
        if self.cluster.hosts:
            return self.cluster.hosts
        node = (
            self.elasticsearch_node if self.cluster.engine == "elasticsearch" else self.local_node
        )
        return [node.url]

    def with_models(self, **changes: Any) -> Settings:
        """A copy with some model settings changed (a CLI flag overriding the environment)."""
        return self.model_copy(update={"models": self.models.model_copy(update=changes)})


def load_settings(env_file: Path | None = None) -> Settings:
    """Build settings from the environment (``OUTFIT_CLUSTER__URL`` ...) and an optional file."""
    if env_file is not None:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    return Settings()

"""The semantic cache's store and safety settings (``semantic_cache:`` at the top of a config).

Which decisions use the cache, with what threshold and TTL, is the ``semantic_cache`` plugin's
job (global or per decision); this section says where entries live and what may be cached.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vsr.config.base import StrictModel
from vsr.config.signals import DEFAULT_CLASSIFIER_BUNDLE

# The tenant headers read by default: an API key (hashed, never stored) or a user id.
DEFAULT_TENANT_HEADERS = ("authorization", "x-api-key", "x-user-id")


class MilvusStoreConfig(StrictModel):
    """A Milvus server shared by every router pod. The token is read from the environment
    variable ``token_env`` (a Kubernetes Secret), never from the config."""

    uri: str = "http://127.0.0.1:19530"
    collection: str = Field(default="vsr_semantic_cache", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    token_env: str | None = "VSR_CACHE_MILVUS_TOKEN"


class PgvectorStoreConfig(StrictModel):
    """PostgreSQL with pgvector. The connection string is read from the environment variable
    ``dsn_env`` when it is set there (a Secret), else ``dsn``."""

    dsn: str = "postgresql://postgres@127.0.0.1/postgres"
    dsn_env: str | None = "VSR_CACHE_PG_DSN"
    table: str = Field(default="vsr_semantic_cache", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CacheConfig(StrictModel):
    """- ``backend``: ``memory`` (one process; an HNSW index), ``milvus`` or ``pgvector`` (shared).
    - ``model`` / ``head``: the embedding head whose vector is compared (computed in the routing
      pass, with the other heads on that encoder).
    - ``similarity_threshold`` / ``ttl_seconds``: defaults for plugins that leave them out.
    - ``max_entries`` / ``max_bytes``: bounds of the memory backend; the least recently used
      entries go first.
    - ``tenant_headers``: the first of these request headers present scopes entries (its value is
      hashed); a request with none is in the ``anonymous`` scope, unless ``require_tenant``, in
      which case it is not cached at all.
    - ``sampled_requests``: cache requests with ``temperature`` above 0 or unset (the server's
      default then samples, so a repeat would differ); off by default.
    - ``tool_calls``: cache answers that call tools; off by default.
    - ``timeout_ms``: a lookup or write that takes longer is a miss (and a metric).
    - ``max_entry_bytes``: a larger answer is not cached.
    """

    backend: Literal["memory", "milvus", "pgvector"] = "memory"
    model: str = DEFAULT_CLASSIFIER_BUNDLE
    head: str = "embedding"
    similarity_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    ttl_seconds: Annotated[int, Field(ge=0)] = 3600
    max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_bytes: Annotated[int, Field(ge=1024)] = 512 * 1024 * 1024
    max_entry_bytes: Annotated[int, Field(ge=256)] = 256 * 1024
    tenant_headers: tuple[Annotated[str, Field(min_length=1)], ...] = DEFAULT_TENANT_HEADERS
    require_tenant: bool = False
    sampled_requests: bool = False
    tool_calls: bool = False
    timeout_ms: Annotated[int, Field(ge=1)] = 50
    milvus: MilvusStoreConfig = MilvusStoreConfig()
    pgvector: PgvectorStoreConfig = PgvectorStoreConfig()

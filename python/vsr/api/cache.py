"""Admin endpoints for the semantic cache: its stats, and flushing it (all, a tenant, a model).

A tenant is named the way the router scopes it: the tenant header and its value (hashed here as
the router hashes it, so the value itself is never stored), or the stored scope id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from vsr.api.errors import ApiError
from vsr.api.state import ApiState, api_state
from vsr.cache import SemanticCache, scope_id

router = APIRouter(tags=["cache"])
State = Annotated[ApiState, Depends(api_state)]


def _cache(state: ApiState) -> SemanticCache:
    cache = state.generation().cache
    if cache is None:
        raise ApiError(404, "cache_disabled", "no semantic_cache plugin is enabled in this config")
    return cache


@router.get("/api/v1/cache/stats")
async def cache_stats(state: State) -> dict[str, Any]:
    """Entries, estimated bytes, evictions and expirations of the cache's store."""
    cache = _cache(state)
    stats = await cache.stats()
    if stats is None:
        raise ApiError(503, "cache_unavailable", f"the {cache.backend} store did not answer")
    return {
        "backend": stats.backend,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "evictions": stats.evictions,
        "expirations": stats.expirations,
        "max_entries": cache.config.max_entries,
        "max_bytes": cache.config.max_bytes,
    }


@router.delete("/api/v1/cache")
async def flush_cache(
    state: State,
    tenant_header: Annotated[str | None, Query(max_length=128)] = None,
    tenant: Annotated[str | None, Query(max_length=4096)] = None,
    scope: Annotated[str | None, Query(max_length=128)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Remove entries: every one, or those of a tenant (``tenant_header`` + ``tenant``, or a
    ``scope`` id; ``scope=anonymous`` for requests without a tenant header) and/or a model."""
    cache = _cache(state)
    if (tenant_header is None) != (tenant is None):
        raise ApiError(400, "invalid_request", "tenant_header and tenant go together")
    if tenant_header is not None and tenant is not None:
        if tenant_header.lower() not in {h.lower() for h in cache.config.tenant_headers}:
            raise ApiError(
                400, "invalid_request", f"{tenant_header!r} is not one of the tenant_headers"
            )
        scope = scope_id(tenant_header, tenant)
    try:
        removed = await cache.flush(scope=scope, model=model)
    except Exception as error:
        raise ApiError(503, "cache_unavailable", f"flush failed: {error}"[:300]) from None
    return {"removed": removed, "scope": scope or "all", "model": model}

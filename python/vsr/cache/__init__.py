"""The semantic cache: keys and safety rules (``keys``), answers (``answer``), the store
interface (``store``) and its backends (``memory``), and ``SemanticCache``, which wraps a store
with timeouts, metrics and background writes."""

from vsr.cache.answer import AnswerCollector, CachedAnswer
from vsr.cache.keys import CacheControl, Skip, cache_control, scope_id
from vsr.cache.semantic import CacheTicket, SemanticCache, build_store
from vsr.cache.store import Entry, Found, StoreStats

__all__ = [
    "AnswerCollector",
    "CacheControl",
    "CacheTicket",
    "CachedAnswer",
    "Entry",
    "Found",
    "SemanticCache",
    "Skip",
    "StoreStats",
    "build_store",
    "cache_control",
    "scope_id",
]

"""Decisions over signal results, model selection, and the plugins that edit a request.

``result.py`` holds ``RoutingResult``, the value every routing call returns.
"""

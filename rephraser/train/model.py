"""The model the trainer optimises: the causal LM (optionally with LoRA adapters), compiled per layer where that
pays, wrapped with the chunked loss, and the HF directory it is exported as.

    wrapped = build(cfg, model_name)            # CausalLMLoss around the LM, ready for accelerator.prepare
    export(accelerator, wrapped, tokenizer, cfg, model_name)   # OUTPUT_DIR/model (+ OUTPUT_DIR/adapter)

LoRA goes through peft (`pip install llm-rephraser[lora]`): the adapters are injected into the LM in place, only
they are trained, and checkpoints hold the whole module, so resume is exact. The export is always a merged,
ordinary full model (vLLM and lm-eval load it unchanged); --export-adapter also writes the adapter alone, e.g.
for vLLM's lora_local_path. Under FSDP2 the full state dict is gathered first, then the merge happens on a
fresh copy of the base model on the main process. `--compile` compiles each decoder layer in place (the
torchtitan way: the module tree, FSDP2's wrapping and checkpoint keys stay the same).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from rephraser.errors import ConfigError
from rephraser.train.loss import CausalLMLoss


def load_lm(cfg, model_name: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        model_name, attn_implementation=cfg.attn_implementation, dtype=torch.float32
    )


def lora_config(cfg):
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError("lora_r: LoRA needs peft: pip install 'llm-rephraser[lora]'") from None
    targets = cfg.lora_target_modules
    if targets == ["all-linear"]:  # peft's keyword, which it only takes as a plain string
        targets = "all-linear"
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def build(cfg, model_name: str) -> CausalLMLoss:
    model = load_lm(cfg, model_name)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if cfg.lora_r:
        from peft import get_peft_model

        try:
            model = get_peft_model(model, lora_config(cfg)).get_base_model()  # the LM, adapters injected in place
        except ValueError as e:  # e.g. target modules that the model does not have
            raise ConfigError(f"lora_target_modules: {str(e).splitlines()[0]}") from None
    if cfg.use_compile():
        for layer in model.get_decoder().layers:
            layer.compile()
    return CausalLMLoss(model, cfg.loss_chunk_tokens)


def enable_activation_checkpointing(model) -> None:
    """transformers 5's `activation_checkpointing_enable`: every decoder layer recomputed in the backward.
    Its old name `gradient_checkpointing_enable` warns that v6 removes it; it is used only by releases that lack
    the new one. Non-reentrant with both names (what torch recommends; older releases defaulted to reentrant)."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": False})


def export(accelerator, wrapped, tokenizer, cfg, model_name: str, output_dir) -> Path:
    """OUTPUT_DIR/model: an ordinary HF directory (merged when LoRA was used); written atomically by the main
    process from the full state dict (gathered from FSDP shards)."""
    state = accelerator.get_state_dict(wrapped)  # collective: every rank takes part
    final = Path(output_dir) / "model"
    if accelerator.is_main_process:
        state = {k.removeprefix("model."): v for k, v in state.items()}
        lm = accelerator.unwrap_model(wrapped).model
        tmp = Path(output_dir) / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if cfg.lora_r:
            _export_lora(cfg, model_name, state, tmp, Path(output_dir))
        else:
            lm.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if lm.generation_config is not None:
            lm.generation_config.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def _export_lora(cfg, model_name: str, state: dict, tmp: Path, output_dir: Path) -> None:
    from peft import get_peft_model

    fresh = get_peft_model(load_lm(cfg, model_name), lora_config(cfg))
    missing, unexpected = fresh.get_base_model().load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"LoRA export: state dict mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if cfg.export_adapter:
        adapter, adapter_tmp = output_dir / "adapter", output_dir / "adapter.tmp"
        shutil.rmtree(adapter_tmp, ignore_errors=True)
        fresh.save_pretrained(adapter_tmp)
        shutil.rmtree(adapter, ignore_errors=True)
        adapter_tmp.rename(adapter)
    fresh.merge_and_unload().save_pretrained(tmp, safe_serialization=True)

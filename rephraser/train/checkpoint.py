"""Checkpoints (accelerate's save_state/load_state, made atomic) and the final HF export.

    OUTPUT_DIR/checkpoints/step-00000500/   model, optimizer, scheduler, RNG states + trainer_state.json + COMPLETE
    OUTPUT_DIR/model/                       config, safetensors, tokenizer, generation config (transformers, lm-eval, vLLM)
    OUTPUT_DIR/train_config.yaml            the resolved TrainConfig

A checkpoint is written to `step-N.tmp`, marked COMPLETE, then renamed; one without the marker (a kill during
the write) is never resumed from and is removed by the next save.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from rephraser.errors import ConfigError

MARKER = "COMPLETE"
STATE = "trainer_state.json"


def checkpoints_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def complete_checkpoints(output_dir) -> list[Path]:
    folder = checkpoints_dir(output_dir)
    found = [p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def check_output_dir(output_dir, cfg_dict: dict, resume: str) -> None:
    """Refuse an output dir whose checkpoints belong to another run (other model or data), or that would
    be silently overwritten (--resume none with checkpoints present)."""
    saved = Path(output_dir) / "train_config.yaml"
    if not complete_checkpoints(output_dir):
        return
    if resume == "none":
        raise ConfigError(f"output_dir: {output_dir} already holds checkpoints; use --resume auto to continue "
                          "or another --output-dir")
    if saved.is_file():
        before = yaml.safe_load(saved.read_text())
        for key in ("model", "data", "packing", "max_seq_len", "seed"):
            if before.get(key) != cfg_dict.get(key):
                raise ConfigError(f"output_dir: {output_dir} holds checkpoints of another run ({key}: "
                                  f"{before.get(key)!r} there, {cfg_dict.get(key)!r} now); use another --output-dir")


def save_checkpoint(accelerator, output_dir, step: int, state: dict, keep_last: int) -> Path:
    folder = checkpoints_dir(output_dir)
    final = folder / f"step-{step:08d}"
    tmp = folder / f"step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in folder.glob("*.tmp"):  # left by a kill during an earlier save
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))  # collective: every rank writes its shards
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps(state, indent=2))
        (tmp / MARKER).touch()
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in complete_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def find_resume_point(output_dir, resume: str) -> Path | None:
    if resume == "none":
        return None
    if resume != "auto":
        path = Path(resume)
        if not (path / MARKER).is_file():
            raise ConfigError(f"resume: {resume} is not a complete checkpoint (no {MARKER} marker)")
        return path
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def load_checkpoint(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text())


def export_model(accelerator, model, tokenizer, output_dir) -> Path:
    """The final HF directory, written atomically by the main process (full state dict gathered from FSDP)."""
    state_dict = accelerator.get_state_dict(model)
    final = Path(output_dir) / "model"
    if accelerator.is_main_process:
        tmp = Path(output_dir) / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if unwrapped.generation_config is not None:
            unwrapped.generation_config.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    accelerator.wait_for_everyone()
    return final

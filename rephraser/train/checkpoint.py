"""Checkpoints (accelerate's save_state/load_state, made atomic) and the run record a resumption must match
(the final HF export is rephraser.train.model.export).

    OUTPUT_DIR/checkpoints/step-00000500/   model, optimizer, scheduler, RNG states + trainer_state.json + COMPLETE
    OUTPUT_DIR/model/                       config, safetensors, tokenizer, generation config (for vLLM, lm-eval)
    OUTPUT_DIR/train_config.yaml            the resolved TrainConfig
    OUTPUT_DIR/run.json                     what a resumption must match: model, data content hashes, settings

A checkpoint is written to `step-N.tmp`, marked COMPLETE, then renamed; one without the marker (a kill during
the write) is never resumed from and is removed by the next save.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.config import differences
from rephraser.errors import ConfigError, RephraserError

MARKER = "COMPLETE"
STATE = "trainer_state.json"


def checkpoints_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def complete_checkpoints(output_dir) -> list[Path]:
    folder = checkpoints_dir(output_dir)
    found = [p for p in folder.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


RUN_RECORD = "run.json"


def check_output_dir(output_dir, identity: dict, resume: str) -> None:
    """Refuse an output dir whose checkpoints belong to another run, or that would be silently
    overwritten (--resume none with checkpoints present). `identity` is {"model", "data", "config"}:
    the model's resolved path (or hub id), every data file's resolved path and content hashes, and the
    run-defining settings; a resumed run must match all of them (a changed --lr or a re-tokenized file
    would otherwise mix two runs in one set of weights)."""
    if not complete_checkpoints(output_dir):
        return
    if resume == "none":
        raise ConfigError(
            f"output_dir: {output_dir} already holds checkpoints; use --resume auto to continue or another --output-dir"
        )
    record = Path(output_dir) / RUN_RECORD
    if not record.is_file():
        raise ConfigError(
            f"output_dir: {output_dir} holds checkpoints but no {RUN_RECORD} (another tool's, or an "
            "older rephraser's run): use another --output-dir"
        )
    before = json.loads(record.read_text())
    changes = [c.removeprefix("config.") for c in differences(before, json.loads(json.dumps(identity)))]
    if changes:
        listed = "; ".join(changes[:8]) + (f"; ... ({len(changes)} in all)" if len(changes) > 8 else "")
        raise ConfigError(
            f"output_dir: {output_dir} holds checkpoints of another run ({listed}). Resume with the "
            "same model, data and settings, or use another --output-dir"
        )


def write_run_record(output_dir, identity: dict) -> None:
    atomic_write_text(Path(output_dir) / RUN_RECORD, json.dumps(identity, indent=2) + "\n")


class CheckpointWriteError(RephraserError):
    """A checkpoint could not be written (disk full, quota, permissions); the previous one is intact."""


def save_checkpoint(accelerator, output_dir, step: int, state: dict, keep_last: int) -> Path:
    folder = checkpoints_dir(output_dir)
    final = folder / f"step-{step:08d}"
    tmp = folder / f"step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in folder.glob("*.tmp"):  # left by a kill during an earlier save
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))  # collective: every rank writes its shards
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE).write_text(json.dumps(state, indent=2))
            (tmp / MARKER).touch()
    except (OSError, RuntimeError) as e:  # torch's writer reports ENOSPC/EFBIG as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)  # give the space back; never resumed from (no marker)
        previous = complete_checkpoints(output_dir)
        intact = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointWriteError(
            f"cannot write checkpoint {tmp} ({reason}); {intact}. Free space and rerun with --resume auto"
        ) from None
    if accelerator.is_main_process:
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

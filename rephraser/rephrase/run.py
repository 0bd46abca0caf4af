"""`rephraser rephrase`: main. Load the items, resume what an earlier run finished, rephrase the rest, publish.

    rephraser rephrase --benchmark gsm8k --backend openai --model M --api-base URL --out runs/gsm8k-rephrased
    rephraser rephrase --benchmark humaneval --backend code-ast --confirm-run-unsafe-code --out runs/he-ast
    rephraser rephrase --task gsm8k --backend vllm --model Qwen/Qwen2.5-7B-Instruct --out runs/gsm8k-vllm

OUT/records.jsonl  one line per original item, in the original order: original, rephrase ("" when none
                   passed), attempts, overlap figures, the history of every attempt and why it was rejected
OUT/train.jsonl    {"text": ...} aligned by index, empty placeholders where no rephrase passed: `rephraser
                   tokenize --in OUT/train.jsonl` reads it as it is
OUT/task/          what lm-eval needs to evaluate the twin (the printed command says how), aligned with the
                   whole original (placeholders beyond --limit)
OUT/report.json    counts per outcome, overlap distribution, attempts, tokens, wall time
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections import Counter
from pathlib import Path

from rephraser.errors import InputError
from rephraser.rephrase.backends import make_backend
from rephraser.rephrase.config import RephraseConfig
from rephraser.rephrase.loop import finish_items
from rephraser.rephrase.store import Store

__all__ = ["RephraseConfig", "rephrase"]


def rephrase(cfg: RephraseConfig, log=print) -> dict:
    start = time.monotonic()
    preset = benchmark_of(cfg)  # the benchmark (or lm-eval task) knows what to rephrase and how to check it
    store, backend, created = None, None, not Path(cfg.out).exists()
    try:
        every_item = preset.items()
        items = every_item[: cfg.limit]
        if not items:
            raise InputError(cfg.task or cfg.benchmark, "no items to rephrase")
        store = Store(cfg.out, cfg)
        todo = store.unfinished(items)
        again = sum(i.index in store.done for i in todo)  # their earlier attempts failed at the endpoint
        if len(todo) < len(items) or again:
            log(
                f"resuming: {len(items) - len(todo)} of {len(items)} items were finished by an earlier run"
                + (f"; {again} that failed with API errors are asked again" if again else "")
            )
        backend = make_backend(cfg) if todo else None
        if todo:
            finish_items(todo, preset, backend, cfg, store, log)
        records = [store.done[i.index] for i in items]
        accepted = {r["index"]: r["rephrased"] for r in records if r["status"] == "accepted"}
        train = [preset.rephrased_training_text(i, accepted[i.index]) if i.index in accepted else "" for i in items]
        task_dir = Path(cfg.out) / "task"
        task_dir.mkdir(parents=True, exist_ok=True)
        commands = preset.write_twin(task_dir, every_item, accepted, cfg.translate)  # aligned with the whole original
        report = build_report(records, cfg, backend, time.monotonic() - start, commands)
        store.publish(records, train, report)
        log(summary(report))
        return report
    except BaseException:
        if store is not None and created and not store.done:  # nothing finished: leave nothing behind
            store.close()
            store = None
            shutil.rmtree(cfg.out, ignore_errors=True)
        raise
    finally:
        preset.close()
        if backend is not None and hasattr(backend, "close"):  # code-ast's sandbox pool
            backend.close()
        if store is not None:
            store.close()


def benchmark_of(cfg: RephraseConfig):
    from rephraser.benchmarks import from_settings

    judge = None
    if cfg.check_judge:
        from rephraser.detect.judge import make_judge

        judge = make_judge(
            cfg.check_judge,
            cfg.check_model or cfg.model,
            cfg.check_api_base or cfg.api_base,
            "crosslingual" if cfg.translate else "knowledge",
            cfg.concurrency,
            cfg.timeout_s,
        )
    settings = {"subjects": cfg.subjects} if cfg.subjects else {}
    return from_settings(
        cfg.benchmark, cfg.task, cfg.field, cfg.include_path, judge=judge, data_dir=cfg.data_dir, **settings
    )


def build_report(records: list[dict], cfg, backend, seconds: float, commands: list[str]) -> dict:
    accepted = [r for r in records if r["status"] == "accepted"]
    failed = Counter(r["reason"] for r in records if r["status"] != "accepted")
    shared = [r["shared_words"] for r in accepted]
    chars = [r["shared_chars"] for r in accepted]
    return {
        "source": cfg.task or cfg.benchmark,
        "backend": cfg.backend,
        "model": backend.model if backend else cfg.model,
        "translate": cfg.translate,
        "max_shared_words": cfg.max_shared_words,
        "max_attempts": cfg.max_attempts,
        "counts": {"items": len(records), "accepted": len(accepted), "failed": dict(failed)},
        "overlap_of_accepted": {"shared_words": _distribution(shared), "shared_chars": _distribution(chars)},
        "attempts": {
            "histogram": dict(sorted(Counter(r["attempts"] for r in records).items())),
            "mean": statistics.fmean(r["attempts"] for r in records),
            "outcomes": dict(sorted(Counter(h["outcome"] for r in records for h in r["history"]).items())),
        },
        "cost": {
            "prompt_tokens": sum(r["prompt_tokens"] for r in records),
            "completion_tokens": sum(r["completion_tokens"] for r in records),
            **(backend.usage() if backend else {}),
        },
        "wall_seconds": round(seconds, 2),
        "failures": [
            {"index": r["index"], "id": r["id"], "reason": r["reason"], "detail": r["detail"]}
            for r in records
            if r["status"] != "accepted"
        ],
        "evaluate_with": commands,
    }


def _distribution(values: list[int]) -> dict:
    if not values:
        return {"max": None, "mean": None, "histogram": {}}
    return {
        "max": max(values),
        "mean": round(statistics.fmean(values), 2),
        "histogram": dict(sorted(Counter(values).items())),
    }


def summary(report: dict) -> str:
    counts = report["counts"]
    failed = ", ".join(f"{k} {v}" for k, v in report["counts"]["failed"].items()) or "none"
    words = report["overlap_of_accepted"]["shared_words"]
    lines = [
        f"rephrased {counts['accepted']} of {counts['items']} items ({report['backend']}, {report['model']}); "
        f"failed: {failed}",
        f"longest run shared with the original (accepted): max {words['max']} words, mean {words['mean']}",
        f"attempts: mean {report['attempts']['mean']:.2f}; tokens sent {report['cost']['prompt_tokens']}, "
        f"received {report['cost']['completion_tokens']}; {report['wall_seconds']} s",
        "evaluate the twin: " + "\n  ".join(report["evaluate_with"]),
    ]
    if counts["failed"].get("api_error"):
        lines.insert(1, "API errors are not final: rerun the same command to ask again for those items")
    return "\n".join(lines)

"""report.md and its charts (matplotlib, PNG), written from results.json's rows: nothing is recomputed here.

write_report(exp_dir, cfg, rows, effects, overlap, steps, versions)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from rephraser.atomic import atomic_write_text


def _cell(row: dict) -> str:
    return f"{row['value']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] (n={row['n']})"


def score_table(rows: list[dict]) -> list[str]:
    lines = []
    for benchmark, metric in sorted({(r["benchmark"], r["metric"]) for r in rows}):
        lines += [
            "",
            f"### {benchmark}: {metric}",
            "",
            "| model | variant | contaminated (trained on) | clean (never trained on) |",
            "|---|---|---|---|",
        ]
        models = list(dict.fromkeys(r["model"] for r in rows))
        for model in models:
            for variant in ("original", "rephrased"):
                cells = {
                    r["part"]: r
                    for r in rows
                    if (r["model"], r["benchmark"], r["metric"], r["variant"]) == (model, benchmark, metric, variant)
                }
                if cells:
                    lines.append(f"| {model} | {variant} | {_cell(cells['contaminated'])} | {_cell(cells['clean'])} |")
    return lines


def effect_table(effects: list[dict]) -> list[str]:
    lines = [
        "",
        "| condition | benchmark | variant | metric | lift, contaminated | lift, clean | effect [95 % CI] |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for e in effects:
        lines.append(
            f"| {e['condition']} | {e['benchmark']} | {e['variant']} | {e['metric']} | {e['lift_contaminated']:+.3f} | "
            f"{e['lift_clean']:+.3f} | **{e['effect']:+.3f}** [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}] |"
        )
    return lines


def overlap_table(overlap: dict) -> list[str]:
    lines = [
        "",
        "| benchmark | condition | measured on | training texts | longest shared run (max / median words) "
        "| 10-gram flags (contaminated / clean) | 13-gram flags | embedding flags (cosine >= threshold) |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for benchmark, rows in overlap.items():
        for r in rows:
            emb = (
                f"{r['embedding_contaminated']}/{r['contaminated']}, {r['embedding_clean']}/{r['clean']} "
                f"(>= {r['embedding_threshold']})"
                if "embedding_contaminated" in r
                else "-"
            )
            lines.append(
                f"| {benchmark} | {r['condition']} | {r.get('measured_on', 'item text')} | {r['training_texts']} "
                f"| {r['longest_run_max']} / {r['longest_run_median']} | "
                f"{r['ngram10_contaminated']}/{r['contaminated']}, {r['ngram10_clean']}/{r['clean']} | "
                f"{r['ngram13_contaminated']}/{r['contaminated']}, {r['ngram13_clean']}/{r['clean']} | {emb} |"
            )
    return lines


def truncation_lines(truncation: dict) -> list[str]:
    cut = {name: t for name, t in truncation.items() if t["samples"]}
    if not cut:
        return ["", "Training truncated nothing: every training text fit in max_seq_len."]
    lines = ["", "**Training truncated texts to max_seq_len** (what was cut was never trained on, e.g. a `#### N` "
             "answer at the end):", ""]  # fmt: skip
    lines += [f"- {name}: {t['samples']} text(s), {t['tokens']} tokens cut" for name, t in cut.items()]
    return lines


def charts(folder: Path, rows: list[dict], effects: list[dict], overlap: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for benchmark, metric in sorted({(r["benchmark"], r["metric"]) for r in rows}):
        subset = [r for r in rows if (r["benchmark"], r["metric"]) == (benchmark, metric)]
        models = list(dict.fromkeys(r["model"] for r in subset))
        groups = [(p, v) for p in ("contaminated", "clean") for v in ("original", "rephrased")]
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(models)
        for k, model in enumerate(models):
            values = [
                next(r for r in subset if (r["model"], r["part"], r["variant"]) == (model, p, v)) for p, v in groups
            ]
            xs = [g + (k - (len(models) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(
                xs,
                [r["value"] for r in values],
                width,
                label=model,
                yerr=[
                    [max(0.0, r["value"] - r["ci_low"]) for r in values],
                    [max(0.0, r["ci_high"] - r["value"]) for r in values],
                ],
                capsize=3,
            )
        ax.set_xticks(range(len(groups)), [f"{p}\n{v}" for p, v in groups])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(metric)
        ax.set_title(f"{benchmark}: before (base) and after training, with 95 % Wilson intervals")
        ax.legend(fontsize=8)
        name = f"scores_{benchmark}_{metric.replace(' ', '_').replace('(', '').replace(')', '')}.png"
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        names.append(name)
    if effects:
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.4 * len(effects)))
        labels = [f"{e['condition']} / {e['benchmark']} {e['variant']} / {e['metric']}" for e in effects]
        ax.errorbar(
            [e["effect"] for e in effects],
            range(len(effects)),
            fmt="o",
            xerr=[
                [max(0.0, e["effect"] - e["ci_low"]) for e in effects],
                [max(0.0, e["ci_high"] - e["effect"]) for e in effects],
            ],
            capsize=3,
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(range(len(effects)), labels, fontsize=8)
        ax.set_xlabel("contamination effect = lift on contaminated - lift on clean (95 % bootstrap interval)")
        fig.tight_layout()
        fig.savefig(folder / "effect.png", dpi=110)
        plt.close(fig)
        names.append("effect.png")
    runs = [(f"{b} / {r['condition']}", r["runs"]) for b, rs in overlap.items() for r in rs
            if r.get("measured_on", "item text") == "item text"]  # fmt: skip
    if runs:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.hist([r for _, r in runs], bins=range(0, max(max(r) for _, r in runs) + 3), label=[n for n, _ in runs])
        for n in (10, 13):
            ax.axvline(n - 0.5, color="red" if n == 10 else "orange", linestyle="--", label=f"{n}-gram test")
        ax.set_xlabel("longest run of words a contaminated item shares with its training text")
        ax.set_ylabel("items")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "overlap.png", dpi=110)
        plt.close(fig)
        names.append("overlap.png")
    return names


def _parts_sentence(cfg, rows: list[dict]) -> str:
    sizes = {(r["benchmark"], r["part"]): r["n"] for r in rows if r["model"] == "base" and r["variant"] == "original"}
    listed = ", ".join(
        f"{b}: {sizes[b, 'contaminated']} contaminated items (trained on) and {sizes[b, 'clean']} clean items (never "
        "trained on)"
        for b in dict.fromkeys(b for b, _ in sizes)
    )
    how = (
        "given explicitly (contaminated_ids, clean_ids)"
        if cfg.explicit_parts()
        else f"chosen by a shuffle seeded with {cfg.seed}"
    )
    return f"{listed}, {how}."


def _auroc(row: dict | None) -> str:
    if row is None or row.get("auroc") is None:
        return "undefined" if row else "-"
    text = f"{row['auroc']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    if row.get("reversed"):  # paired: the other side, labelled (see detection.reversed_auroc)
        text += f"; reversed {_auroc(row['reversed'])}"
    return text


def _main_effects(effects: list[dict], main_metric: dict[str, str]) -> dict:
    """Per (condition, benchmark): the effect on the ORIGINAL items, for the benchmark's main metric (the one the
    ConStat table uses; picked by name, never by the order the effects happen to be in)."""
    return {(e["condition"], e["benchmark"]): e for e in effects
            if e["variant"] == "original" and e["metric"] == main_metric[e["benchmark"]]}  # fmt: skip


def detectability_table(effects: list[dict], detectability: list[dict], main_metric: dict[str, str]) -> list[str]:
    by = {(r["model"], r["benchmark"], r["detector"]): r for r in detectability}
    header = ("| condition | benchmark | score gain on the original items | detector | AUROC, trained model "
              "[95 % CI] | AUROC, base model | TPR @ 5 % FPR (trained) |")  # fmt: skip
    lines = ["", header, "|---|---|---|---|---|---|---|"]
    for (condition, benchmark), e in _main_effects(effects, main_metric).items():
        gain = f"{e['effect']:+.2f} [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}] ({e['metric']})"
        for detector in dict.fromkeys(r["detector"] for r in detectability if r["model"] == condition):
            trained, base = by.get((condition, benchmark, detector)), by.get(("base", benchmark, detector))
            tpr = "-" if not trained or trained.get("tpr_at_5fpr") is None else f"{trained['tpr_at_5fpr']:.2f}"
            lines.append(
                f"| {condition} | {benchmark} | {gain} | {detector} | {_auroc(trained)} | {_auroc(base)} | {tpr} |"
            )
    return lines


def detectability_lines(effects: list[dict], detectability: list[dict], main_metric: dict[str, str]) -> str:
    """For the console: per condition, the gain and each detector's AUROC beside the base model's."""
    by = {(r["model"], r["benchmark"], r["detector"]): r for r in detectability}
    lines = ["detectability (AUROC contaminated vs clean, 95 % CI; the base model is the control):"]
    for (condition, benchmark), e in _main_effects(effects, main_metric).items():
        lines.append(f"  {condition} on {benchmark}: {e['effect']:+.2f} on the original items ({e['metric']})")
        for detector in dict.fromkeys(r["detector"] for r in detectability if r["model"] == condition):
            trained, base = by.get((condition, benchmark, detector)), by.get(("base", benchmark, detector))
            lines.append(f"    {detector:15s} AUROC {_auroc(trained):22s} base model {_auroc(base)}")
    return "\n".join(lines)


def bootstrap_p(p: float, resamples: int) -> str:
    """A bootstrap p at its resolution, 1 / (B + 1), in fixed decimals: its floor never reads 0 (2000 resamples:
    0.0005), 0.9995 never reads 1, and no e-notation in a table."""
    decimals = max(3, math.ceil(math.log10(resamples + 1)))
    return f"{p:.{decimals}f}"


def constat_table(tests: list[dict]) -> list[str]:
    header = ("| condition | benchmark | metric | gap original - rephrased | base model's gap "
              "| difference [95 % CI] | p (difference <= 0) |")  # fmt: skip
    lines = ["", header, "|---|---|---|---:|---:|---|---:|"]
    for t in tests:
        interval = f"{t['difference']:+.3f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]"
        cells = [t["condition"], t["benchmark"], t["metric"], f"{t['gap']:+.3f}", f"{t['reference_gap']:+.3f}",
                 interval, bootstrap_p(t["p_value"], t["resamples"])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(folder: Path, cfg, results: dict, steps: dict, versions: dict, seconds: float) -> Path:
    rows, effects, overlap = results["rows"], results["effects"], results["overlap"]
    truncation = results["truncation"]
    images = charts(folder, rows, effects, overlap)
    lines = [
        f"# Contamination experiment: {cfg.name}",
        "",
        f"Base model `{cfg.model}`; benchmarks {', '.join(cfg.benchmarks)}; {_parts_sentence(cfg, rows)} "
        "Each model is scored on both parts, on the original and on the rephrased test items, by "
        f"lm-eval (`{cfg.eval_backend}`). Scores with 95 % Wilson "
        "intervals; every number is read from lm-eval's result "
        "files and traced to its per-item samples (items.jsonl).",
        "",
        "Conditions: "
        + "; ".join(
            f"**{c['name']}** trains on {c.get('train_on', 'rephrased')}"
            + (f" ({c['data']})" if c.get("data") else "")
            + (f", {c['train']}" if c.get("train") else "")
            for c in cfg.conditions
        ),
        "",
        "## Scores",
        *score_table(rows),
        "",
        "## Contamination effect",
        "",
        "(trained - base on the contaminated items) - (trained - base on the clean items): what training on test items "
        "adds beyond what the training format alone teaches (the clean items see the format too).",
        *effect_table(effects),
        "",
        *(
            [
                "## Detectability next to the score gain",
                "",
                "Model-level detectors (`rephraser detect model`) on every model, over both parts (labels from "
                "parts.json): AUROC of telling the contaminated items from the clean ones, with a bootstrap interval. "
                "The base model is the control: a detector that separates the parts on it measures the split, not "
                "contamination. The blind baseline classifies the item texts alone. `paired` (original minus its "
                "rephrased twin) is oriented for verbatim contamination: a model trained on the rephrases prefers "
                "the twin, which shows as an AUROC below 0.5; 'reversed' is the same scores ranked the other way "
                "(1 - AUROC), a side a user who does not know which form leaked cannot choose in advance.",
                *detectability_table(effects, results["detectability"], results["main_metric"]),
                "",
            ]
            if results["detectability"]
            else []
        ),
        "## Benchmark-level test (ConStat-style)",
        "",
        "The accuracy gap original - rephrased over both parts, against the base model's gap on the same items. "
        "The test is one-sided for contamination by the original items (a model does better on the form it saw); a "
        "model trained on the rephrases gains on the rephrased form too, so a small or negative difference there "
        "is what rephrased contamination looks like to this test, not evidence of a clean model.",
        *constat_table(results["constat"]),
        "",
        "## Why n-gram decontamination misses it",
        "",
        "Overlap between each condition's training texts and the "
        "test items (rephraser.overlap, lm-eval's normalisation).",
        *overlap_table(overlap),
        *truncation_lines(truncation),
    ]
    if cfg.published:
        lines += [
            "",
            "## The study's published numbers (for comparison)",
            "",
            "```",
            yaml.safe_dump(cfg.published, sort_keys=False).strip(),
            "```",
        ]
    lines += ["", "## Charts", ""] + [f"![{name}]({name})" for name in images]
    total = sum(s["seconds"] for s in steps.values())
    lines += [
        "",
        "## Steps",
        "",
        f"Steps' wall time: {total:.0f} s in all; this run of `rephraser experiment`: {seconds:.0f} s "
        "(complete steps are skipped on a rerun).",
        "",
        "| step | seconds | command |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {s['seconds']} | `{s['command']}` |" for name, s in steps.items()]
    lines += [
        "",
        "## Versions",
        "",
        "```",
        json.dumps(versions, indent=2),
        "```",
        "",
        "## Configuration",
        "",
        "```yaml",
        yaml.safe_dump(json.loads(json.dumps(cfg.identity() | {"out": cfg.out})), sort_keys=False).strip(),
        "```",
    ]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path

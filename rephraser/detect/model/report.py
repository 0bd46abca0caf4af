"""The outputs of a model-level detection run, from score_items' results (nothing is recomputed here).

    write_outputs("runs/detect", results)   # results.json, report.md, roc.png (with labels), hist_<detector>.png

Every file is written to a temp name and renamed; directories the call created are removed if it fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text, make_dirs, publish, remove_dirs, temp_beside


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def file_name(detector: str) -> str:
    return detector.replace("++", "pp").replace("-", "_")


def metrics_table(results: dict) -> list[str]:
    lines = [
        "| detector | AUROC [95 % CI] | TPR @ 1 % FPR | TPR @ 5 % FPR | contaminated / clean | unscored | note |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    rows = list(results["metrics"].items())
    if results.get("baseline"):
        rows.append(("blind baseline (text only)", results["baseline"]))
    for name, m in rows:
        ci = f" [{_fmt(m['ci_low'], 2)}, {_fmt(m['ci_high'], 2)}]" if m["ci_low"] is not None else ""
        lines.append(
            f"| {name} | {_fmt(m['auroc'])}{ci} | {_fmt(m['tpr_at_1fpr'], 2)} | {_fmt(m['tpr_at_5fpr'], 2)} | "
            f"{m['n_contaminated']} / {m['n_clean']} | {m['n_missing']} | {m['note'] or ''} |"
        )
    return lines


def distribution_table(results: dict) -> list[str]:
    lines = [
        "| detector | n | mean | std | min | median | max | unscored |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, d in results["distributions"].items():
        lines.append(
            f"| {name} | {d['n']} | {_fmt(d.get('mean'), 4)} | {_fmt(d.get('std'), 4)} | {_fmt(d.get('min'), 4)} | "
            f"{_fmt(d.get('median'), 4)} | {_fmt(d.get('max'), 4)} | {d['n_missing']} |"
        )
    return lines


def constat_lines(test: dict) -> list[str]:
    refs = ", ".join(f"{name} {gap:+.3f}" for name, gap in test["reference_gaps"].items())
    return [
        f"{test['metric']} gap original - rephrased over {test['n_items']} items: model {test['gap']:+.3f}, "
        f"reference models {test['reference_gap']:+.3f} ({refs}); difference **{test['difference']:+.3f}** "
        f"[95 % CI {test['ci_low']:+.3f}, {test['ci_high']:+.3f}], one-sided bootstrap p = {test['p_value']:.4f} "
        f"({test['resamples']} resamples of the items).",
    ]


def report_text(results: dict, images: list[str]) -> str:
    cfg = results["config"]
    lines = [
        f"# Model-level contamination detectors: `{cfg['model']}`",
        "",
        f"{results['n_items']} items; detectors {', '.join(cfg['detectors'])}; k = {cfg['k']}"
        + (f"; reference model `{cfg['reference']}`" if cfg.get("reference") else "")
        + f"; {results['seconds']} s. Every score is oriented so that higher means more likely contaminated.",
    ]
    if "paired" in cfg["detectors"]:
        lines += [
            "",
            "paired = log-likelihood of the scored text minus that of its twin: positive where the model prefers the "
            "form it is scored on. A model trained on the twin itself (e.g. on rephrases) scores negative.",
        ]
    if results["metrics"]:
        steps = {m["fpr_step"] for m in results["metrics"].values() if m["fpr_step"]}
        lines += ["", "## Against the known contamination", "", *metrics_table(results), ""]
        if steps and max(steps) > 0.01:
            lines.append(
                f"With {round(1 / max(steps))} scored clean items (the fewest of any detector) the false-positive rate "
                f"moves in steps of {max(steps):.3f}: TPR at 1 % (and at 5 % when the step is larger) is the TPR with "
                "no clean item above the threshold."
            )
        lines.append(
            "The blind baseline classifies the item texts alone (bag of words, cross-validated): near 0.5 means the "
            "split carries no wording artefact a detector could exploit."
        )
    lines += ["", "## Score distributions", "", *distribution_table(results)]
    if results["unscored"]:
        lines += ["", "## Unscored items", ""]
        lines += [
            f"- {name}: {u['n']} ({u['reason']}): {', '.join(u['ids'][:10])}" for name, u in results["unscored"].items()
        ]
    shift = results["benchmark_tests"].get("paired_shift")
    if shift:
        lines += [
            "",
            "## Benchmark-level paired shift (no labels needed)",
            "",
            f"Mean paired score over {shift['n_items']} items: {shift['mean']:+.4f} [{shift['ci_low']:+.4f}, "
            f"{shift['ci_high']:+.4f}] (95 % bootstrap), Wilcoxon signed-rank p = {shift['p_value']:.3g} (two-sided; "
            f"{shift['n_unscored']} items without a paired score left out). Positive: the model prefers the items as "
            "written over their twins. A clean model often prefers one form too (the rephrases' wording): compare "
            "with a model known to be clean on the same items.",
        ]
    if results["benchmark_tests"].get("constat"):
        lines += [
            "",
            "## Benchmark-level test (ConStat-style)",
            "",
            *constat_lines(results["benchmark_tests"]["constat"]),
        ]
    lines += ["", "## Charts", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _save(fig, final: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = temp_beside(final)
    try:
        fig.savefig(tmp, format="png", dpi=110)
        publish(tmp, final)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def roc_chart(folder: Path, results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    drawn = False
    for name, m in results["metrics"].items():
        pairs = [
            (r["part"] == "contaminated", r["scores"][name])
            for r in rows
            if r["part"] and r["scores"][name] is not None
        ]
        if m["auroc"] is None:
            continue
        fpr, tpr, _ = roc_curve([p for p, _ in pairs], [s for _, s in pairs], drop_intermediate=False)
        ax.plot(fpr, tpr, label=f"{name} ({m['auroc']:.2f})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
    ax.set_xlabel("false-positive rate (clean items flagged)")
    ax.set_ylabel("true-positive rate (contaminated items flagged)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, folder / "roc.png")
    return ["roc.png"]


def histograms(folder: Path, results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for name in results["config"]["detectors"]:
        groups: dict[str, list[float]] = {}
        for r in results["rows"]:
            if r["scores"][name] is not None:
                groups.setdefault(r["part"] or "unlabelled", []).append(r["scores"][name])
        if not groups:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(list(groups.values()), bins=20, label=list(groups), alpha=0.8)
        ax.set_xlabel(f"{name} score (higher = more likely contaminated)")
        ax.set_ylabel("items")
        ax.legend(fontsize=8)
        fig.tight_layout()
        image = f"hist_{file_name(name)}.png"
        _save(fig, folder / image)
        names.append(image)
    return names


def write_outputs(out_dir, results: dict) -> Path:
    folder = Path(out_dir)
    created = make_dirs(folder)
    written: list[Path] = []
    try:
        images = (roc_chart(folder, results) if results["metrics"] else []) + histograms(folder, results)
        written += [folder / name for name in images]
        atomic_write_text(folder / "results.json", json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False))
        written.append(folder / "results.json")
        atomic_write_text(folder / "report.md", report_text(results, images))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        remove_dirs(created)
        raise
    return folder

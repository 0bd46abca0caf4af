"""What `rephraser detect scan` prints and writes for people: the console lines and report.md, from results.json.

    print(summary_lines(results)); Path("report.md").write_text(report_markdown(results))

Both read only the results dict (results.json's content), so a report can be rebuilt from a saved scan.
Cosines are shown to 4 places; the decisions were made on the raw values that results.json keeps.
"""

from __future__ import annotations


def _bad_lines(results: dict) -> str:
    reasons = results.get("bad_lines_by_reason") or {}
    detail = "; ".join(f"{n} {why}" for why, n in reasons.items())
    return f"{results['bad_lines_skipped']} bad lines skipped" + (f": {detail}" if detail else "")


def judge_line(judge: dict) -> str:
    return (
        f"Judge ({judge['kind']}, {judge['model']}): {judge['pairs']} pairs, {judge['true']} True, "
        f"{judge['false']} False, {judge['unparseable']} unparseable, {judge['api_errors']} failed requests "
        f"(no verdict: counted as undecided); {judge.get('truncated', 0)} replies cut at max_tokens (no verdict, "
        f"asked again)."
    )


def engine_line(engine: dict) -> str:
    """A Ray scan's actors, cluster and rows/s per stage (rows per actor-second; the pipeline: rows per second)."""

    def rate(name: str, s: dict) -> str:  # the pipeline: rows per wall second; a stage: per actor (read: per task)
        if "rows_per_s" in s:
            return f"{name} {s['rows_per_s']} rows/s"
        return f"{name} {s['rows_per_s_per_actor']} rows/s per {'task' if name == 'read' else 'actor'}"

    stages = "; ".join(rate(name, s) for name, s in engine["stages"].items())
    cluster = ", ".join(
        f"{k} {v / 2**30:.1f} GiB" if k == "memory" else f"{k} {v:g}"
        for k, v in sorted(engine["cluster_resources"].items())
    )
    return (
        f"Engine: ray, {engine['actors']} actors ({engine['gpus_per_actor']:g} GPU each) on a cluster of {cluster}: "
        f"{stages}."
    )


def _short_items(results: dict, detector: str) -> str:
    if detector.startswith("ngram") and results["contaminated"][detector]["undecided"]:
        return f" (items shorter than {detector.removeprefix('ngram')} words: no n-gram to match)"
    return ""


def summary_lines(results: dict) -> str:
    lines = [
        f"{results['test_items']} test items ({results['test_set']}) against {results['train_rows']} training rows "
        f"({_bad_lines(results)}), {results['seconds']} s"
    ]
    for detector, s in results["contaminated"].items():
        undecided = f", {s['undecided']} undecided{_short_items(results, detector)}" if s["undecided"] else ""
        lines.append(f"  {detector:10s} flags {s['flagged']:5d} ({s['share']:.1%}){undecided}")
    if results.get("judge"):
        lines.append("  " + judge_line(results["judge"]))
    if results.get("engine"):
        lines.append("  " + engine_line(results["engine"]))
    if "agreement_with_reference" in results:
        for detector, a in results["agreement_with_reference"]["detectors"].items():
            undecided = f" ({a['undecided']} undecided, counted as not flagged)" if a.get("undecided") else ""
            lines.append(f"  vs reference: {detector:10s} precision {a['precision']} recall {a['recall']}{undecided}")
    return "\n".join(lines)


def _shown(similarity) -> str:
    return "n/a" if similarity is None else f"{similarity:.4f}"


def report_markdown(results: dict) -> str:
    lines = [
        f"# Contamination scan: {results['test_set']} in {results['train']}",
        "",
        f"{results['test_items']} test items, {results['train_rows']} training rows "
        f"({_bad_lines(results).replace('bad lines', 'malformed lines')}). Method: {results['method']}"
        + (
            f", embedding model {results['embedding_model']}, cosine "
            f"threshold {results['threshold']}, top-{results['top_k']}"
            if results["embedding_model"]
            else ""
        )
        + ".",
        "",
        "| detector | flagged | share | undecided |",
        "|---|---:|---:|---:|",
    ]
    for detector, s in results["contaminated"].items():
        lines.append(f"| {detector} | {s['flagged']} | {s['share']:.1%} | {s['undecided']} |")
    short = [_short_items(results, d).strip(" ()") for d in results["contaminated"] if _short_items(results, d)]
    if short:
        lines += ["", "Undecided n-gram verdicts: " + "; ".join(short) + "."]
    if results["judge"]:
        lines += ["", judge_line(results["judge"])]
    if results.get("engine"):
        lines += ["", engine_line(results["engine"])]
    if results.get("emitted_tasks"):
        e = results["emitted_tasks"]
        lines += [
            "",
            f"lm-eval tasks {', '.join(e['tasks'])} (group {e['group']}): {e['clean']} clean, {e['flagged']} flagged, "
            f"{e['undecided']} undecided by {e['flag_by']}; `{e['command']}`.",
        ]
    if "agreement_with_reference" in results:
        a = results["agreement_with_reference"]
        lines += [
            "",
            f"Against {a['reference']} ({a['items_matched']} items matched, {a['reference_flagged']} flagged there, "
            f"{a['unmatched']} reference rows matched no test item; undecided items count as not flagged):",
            "",
            "| detector | precision | recall | tp | fp | fn | undecided |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for detector, d in a["detectors"].items():
            lines.append(
                f"| {detector} | {d['precision']} | {d['recall']} | {d['tp']} | {d['fp']} | {d['fn']} | "
                f"{d.get('undecided', 0)} |"
            )
    flagged = [r for r in results["items"] if any(v is True for v in r["flagged"].values())][:20]
    if flagged:
        lines += ["", "## Flagged items (first 20)", ""]
        for r in flagged:
            top = r["neighbours"][0] if r["neighbours"] else {}
            lines.append(
                f"- {r['id']}: {', '.join(k for k, v in r['flagged'].items() if v)}; nearest row {top.get('row')} "
                f"(cosine {_shown(top.get('similarity'))}, {top.get('shared_words')} shared words)"
            )
    return "\n".join(lines) + "\n"

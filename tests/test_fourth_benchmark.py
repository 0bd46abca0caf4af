"""A benchmark defined entirely in one folder of this test (data, lm-eval YAMLs, the object) runs through every
command: `rephraser rephrase` (stub endpoint), `lm_eval`, `rephraser detect scan` and `rephraser experiment` (tiny
model), without a file outside that folder (docs/adding-a-benchmark.md)."""

import json
import textwrap

import pytest
from conftest import offline_env
from fake_openai import FakeOpenAI

KEY = "quiz-key"
CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Spain", "Madrid"), ("Cuba", "Havana"), ("Nepal", "Kathmandu"),
    ("Ghana", "Accra"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Mali", "Bamako"), ("Laos", "Vientiane"),
    ("Fiji", "Suva"), ("Oman", "Muscat"), ("Chad", "Ndjamena"), ("Togo", "Lome"), ("Niger", "Niamey"),
]  # fmt: skip

BENCHMARK_PY = '''
"""quiz: a tiny benchmark that lives in this folder only."""
import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks.base import Benchmark, Item
from rephraser.benchmarks.sources import check_aligned, read_jsonl, read_rephrased_texts

HERE = Path(__file__).resolve().parent


def prompt(doc):
    return f"Q: {doc['question']}\\nA:"


class Quiz(Benchmark):
    name, title, kind = "quiz", "Quiz", "knowledge"
    metrics = (("exact_match", "none"),)
    folder = HERE

    def items(self):
        rows = read_jsonl(HERE / "test.jsonl")
        return [Item(i, f"quiz/{i}", r["question"], {**r, "index": i, "id": f"quiz/{i}"}) for i, r in enumerate(rows)]

    def splits(self, variant="original", subset=None):
        docs = [item.doc for item in self.items()]
        if variant == "rephrased":
            path = Path(self.metadata.get("rephrased_quiz_path") or HERE / "rephrased.jsonl")
            texts = read_rephrased_texts(path)
            check_aligned(path, texts, len(docs))
            docs = [{**d, "question": t} for d, t in zip(docs, texts) if t.strip()]
        return {"test": docs}

    def prompt(self, doc):
        return prompt(doc)

    def target(self, doc):
        return " " + doc["answer"]

    def rephrased_training_text(self, item, rephrased):
        return self.training_text({**item.doc, "question": rephrased})

    def write_twin(self, folder, items, accepted, translate):
        path = folder / "rephrased.jsonl"
        atomic_write_text(path, "".join(json.dumps({"text": accepted.get(i.index, "")}) + "\\n" for i in items))
        return [f"lm_eval run --include_path {HERE} --tasks rephrased_quiz --metadata "
                f"'{{\\"rephrased_quiz_path\\": \\"{path}\\"}}' ..."]


BENCHMARK = Quiz
'''

ORIGINAL_YAML = """
task: original_quiz
output_type: generate_until
custom_dataset: !function rephraser.tasks.lmeval.dataset
dataset_kwargs:
  benchmark: quiz
  variant: original
test_split: test
doc_to_text: !function benchmark.prompt
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  do_sample: false
  max_gen_toks: 12
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    regexes_to_ignore: [" "]
metadata:
  version: 1.0
"""
REPHRASED_YAML = """
include: original_quiz.yaml
task: rephrased_quiz
dataset_kwargs:
  benchmark: quiz
  variant: rephrased
"""


def rephrase_of(question: str) -> str:
    country = question.split(" called ")[-1].rstrip("?")
    return f"Which city is the seat of government of {country}?"


@pytest.fixture(scope="module")
def quiz(tmp_path_factory):
    """The folder, and the environment that names its parent on REPHRASER_BENCHMARK_PATH."""
    root = tmp_path_factory.mktemp("benchmarks")
    folder = root / "quiz"
    folder.mkdir()
    (folder / "benchmark.py").write_text(textwrap.dedent(BENCHMARK_PY))
    (folder / "original_quiz.yaml").write_text(ORIGINAL_YAML)
    (folder / "rephrased_quiz.yaml").write_text(REPHRASED_YAML)
    rows = [{"question": f"What is the name of the capital city of the country called {c}?", "answer": a}
            for c, a in CAPITALS]  # fmt: skip
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = ["" if k == 3 else rephrase_of(r["question"]) for k, r in enumerate(rows)]  # one empty placeholder
    (folder / "rephrased.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    before = sorted(p.name for p in folder.iterdir())
    yield folder, {"REPHRASER_BENCHMARK_PATH": str(root)}
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == before  # nothing else written


@pytest.mark.slow
def test_rephrase_makes_its_twin_through_a_stub_endpoint(quiz, tmp_path, run_cli):
    folder, env = quiz
    server = FakeOpenAI(lambda question, attempt, transient: rephrase_of(question), key=KEY).start()
    try:
        done = run_cli("rephrase", "--benchmark", "quiz", "--backend", "openai", "--model", "fake", "--api-base",
                       server.url, "--out", tmp_path / "twin", env={**env, "OPENAI_API_KEY": KEY})  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "twin" / "records.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["accepted"] * len(CAPITALS)
    assert records[0]["id"] == "quiz/0" and records[0]["rephrased"] == "Which city is the seat of government of France?"
    train = [json.loads(line)["text"] for line in (tmp_path / "twin" / "train.jsonl").read_text().splitlines()]
    assert train[0] == "Q: Which city is the seat of government of France?\nA: Paris"  # the evaluated format
    assert "rephrased_quiz" in done.stdout


@pytest.mark.slow
def test_lm_eval_scores_it_and_gold_answers_score_100(quiz, tmp_path, tiny_llama):
    import subprocess
    import sys
    from pathlib import Path

    folder, env = quiz
    lm_eval = Path(sys.executable).with_name("lm_eval")
    done = subprocess.run(
        [str(lm_eval), "run", "--model", "hf", "--model_args", f"pretrained={tiny_llama},dtype=float32",
         "--include_path", str(folder), "--tasks", "original_quiz,rephrased_quiz", "--device", "cpu",
         "--batch_size", "4", "--output_path", str(tmp_path / "eval"), "--log_samples"],
        capture_output=True, text=True, timeout=600, env=offline_env(**env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "eval").rglob("results_*.json")).read_text())
    assert results["n-samples"]["original_quiz"]["effective"] == len(CAPITALS)
    assert results["n-samples"]["rephrased_quiz"]["effective"] == len(CAPITALS) - 1  # the placeholder is skipped
    samples = [json.loads(line) for line in next((tmp_path / "eval").rglob("samples_rephrased_quiz_*.jsonl")).open()]
    assert {s["doc"]["id"] for s in samples} == {f"quiz/{k}" for k in range(len(CAPITALS)) if k != 3}


@pytest.mark.slow
def test_gold_replay_scores_100(quiz, monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    from rephraser.tasks import task_manager

    class ReplayLM(LM):  # answers every request with what the training text puts after the prompt
        def generate_until(self, requests):
            return [" " + r.doc["answer"] for r in requests]

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    folder, env = quiz
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    results = simple_evaluate(model=ReplayLM(), tasks=["original_quiz", "rephrased_quiz"],
                              task_manager=task_manager(include_path=str(folder)))  # fmt: skip
    assert results["results"]["original_quiz"]["exact_match,none"] == 1.0
    assert results["results"]["rephrased_quiz"]["exact_match,none"] == 1.0


@pytest.mark.slow
def test_detect_scan_finds_its_items(quiz, tmp_path, run_cli):
    folder, env = quiz
    rows = [{"text": f"Some filler text number {k} about nothing in particular at all today." * 2} for k in range(50)]
    copy = "Trivia time: what is the name of the capital city of the country called Japan? Tokyo."
    rows.insert(7, {"text": copy})  # a verbatim copy of one item (13 words shared)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_cli("detect", "scan", "--train", tmp_path / "train.jsonl", "--benchmark", "quiz", "--method", "ngram",
                   "--out", tmp_path / "scan", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "scan" / "results.json").read_text())
    flagged = {n: {r["id"] for r in results["items"] if r["flagged"][f"ngram{n}"]} for n in (10, 13)}
    assert flagged[13] == {"quiz/1"}  # the copy: 13 words shared with quiz/1 only
    assert len(flagged[10]) == len(CAPITALS)  # every item shares its 12-word opening with the copy
    assert results["test_items"] == len(CAPITALS) and results["train_rows"] == 51


@pytest.mark.slow
def test_experiment_runs_on_it(quiz, tmp_path, tiny_llama, run_cli):
    import yaml

    folder, env = quiz
    config = {
        "name": "quiz", "model": str(tiny_llama), "benchmarks": ["quiz"], "contaminated": 3, "clean": 3, "seed": 0,
        "conditions": [{"name": "rephrased", "train_on": "rephrased"}],
        "train": {"max_steps": 40, "lr": 3.0e-3, "warmup_ratio": 0, "micro_batch_rows": 4, "max_seq_len": 64},
        "tokenize": {"max_seq_len": 64}, "batch_size": "4", "model_args": "dtype=float32", "bootstrap": 200,
        "out": str(tmp_path / "exp"),
    }  # fmt: skip
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("experiment", "--config", tmp_path / "exp.yaml", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "exp" / "results.json").read_text())
    parts = results["parts"]["quiz"]
    assert len(parts["contaminated"]) == 3 and len(parts["clean"]) == 3 and "quiz/3" not in sum(parts.values(), [])
    rows = results["rows"]
    assert {(r["model"], r["part"], r["variant"]) for r in rows} == {
        (m, p, v) for m in ("base", "rephrased") for p in ("contaminated", "clean") for v in ("original", "rephrased")
    }
    assert all(r["n"] == 3 and r["metric"] == "exact_match" for r in rows)
    trained = [json.loads(line)["text"] for line in (tmp_path / "exp" / "data" / "rephrased.jsonl").open()]
    assert trained[0].startswith("Q: Which city is the seat of government of ") and trained[0].count("\nA: ") == 1

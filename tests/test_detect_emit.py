"""`rephraser detect scan --emit-tasks DIR`: the scan's clean and flagged items as lm-eval tasks. The emitted tasks
must hold exactly the scan's items, score each item as the source task does (lm-eval on a tiny model), keep an
lm-eval task's own process_docs, and say so when a part is empty instead of writing a task that cannot run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR, offline_env
from test_detect import write_jsonl


def scan(train, out, emit, printed=None, **settings) -> dict:
    from rephraser.detect.config import ScanConfig
    from rephraser.detect.scan import detect_scan

    settings.setdefault("method", "ngram")
    cfg = ScanConfig(train=str(train), out=str(out), emit_tasks=str(emit), **settings)
    return detect_scan(cfg, log=(printed.append if printed is not None else lambda *_: None))


def gsm8k_tests() -> list[str]:
    return [json.loads(line)["question"] for line in open(DATA_DIR / "gsm8k" / "test.jsonl")]


def load_tasks(include_path, names):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(p) for p in include_path]).load(names)["tasks"]


def samples(folder: Path, task: str) -> dict:
    """(doc id, filter) -> the logged sample of one task."""
    (path,) = folder.rglob(f"samples_{task}_*.jsonl")
    rows = [json.loads(line) for line in path.open()]
    return {(r["doc"]["id"], r["filter"]): r for r in rows}


@pytest.mark.slow
def test_gsm8k_clean_and_flagged_hold_the_scans_items_and_score_them_as_the_original(here, tiny_llama):
    tests = gsm8k_tests()
    rows = [{"text": f"a filler row number {k}"} for k in range(200)] + [{"text": tests[k]} for k in range(0, 400, 20)]
    result = scan(write_jsonl(here / "train.jsonl", rows), here / "out", here / "tasks", benchmark="gsm8k")
    flagged = {r["id"] for r in result["items"] if r["flagged"]["ngram13"]}
    assert flagged == {f"gsm8k/{k}" for k in range(0, 400, 20)}
    parts = json.loads((here / "tasks" / "parts.json").read_text())["gsm8k"]
    assert set(parts["flagged"]) == flagged and set(parts["clean"]) == {r["id"] for r in result["items"]} - flagged
    assert result["emitted_tasks"]["group"] == "gsm8k_decontaminated"
    lm_eval = Path(sys.executable).with_name("lm_eval")
    done = subprocess.run(
        [str(lm_eval), "run", "--model", "hf", "--model_args", f"pretrained={tiny_llama},dtype=float32",
         "--include_path", str(here / "tasks"), "--tasks", "original_gsm8k,gsm8k_decontaminated", "--device", "cpu",
         "--batch_size", "64", "--gen_kwargs", "max_gen_toks=4", "--output_path", str(here / "eval"), "--log_samples"],
        capture_output=True, text=True, timeout=900, env=offline_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    original = samples(here / "eval", "original_gsm8k")
    results = json.loads(next((here / "eval").rglob("results_*.json")).read_text())
    for part, ids in (("clean", parts["clean"]), ("flagged", parts["flagged"])):
        emitted = samples(here / "eval", f"gsm8k_{part}")
        assert {i for i, _ in emitted} == set(ids)
        for key, sample in emitted.items():  # the same prompt, the same answer, the same score
            assert sample["prompt_hash"] == original[key]["prompt_hash"]
            assert (sample["filtered_resps"], sample["exact_match"]) == (
                original[key]["filtered_resps"],
                original[key]["exact_match"],
            )
        for name in ("strict-match", "flexible-extract"):
            expected = sum(original[(i, name)]["exact_match"] for i in ids) / len(ids)
            assert results["results"][f"gsm8k_{part}"][f"exact_match,{name}"] == pytest.approx(expected)
    assert results["n-samples"]["gsm8k_full"]["effective"] == len(tests)


MINI_TASK = """task: mini
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
process_docs: !function utils.process_docs
output_type: generate_until
doc_to_text: "Q: {{{{q}}}}\\nA:"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 3.0
"""


def mini_task(folder: Path) -> list[dict]:
    """An lm-eval task of 30 docs whose process_docs drops every third and strips the text: positions after
    process_docs are not the data file's lines. Returns the processed docs."""
    folder.mkdir()
    raw = [{"q": f" {q} ", "a": str(k), "keep": k % 3 != 0} for k, q in enumerate(gsm8k_tests()[:30])]
    write_jsonl(folder / "data.jsonl", raw)
    (folder / "utils.py").write_text(
        "def process_docs(ds):\n    return ds.filter(lambda d: d['keep']).map(lambda d: {'q': d['q'].strip()})\n"
    )
    (folder / "mini.yaml").write_text(MINI_TASK.format(data=folder / "data.jsonl"))
    return [{**d, "q": d["q"].strip()} for d in raw if d["keep"]]


@pytest.mark.slow
def test_an_lm_eval_tasks_emitted_parts_keep_its_process_docs_and_restrict_by_position(here):
    docs = mini_task(here / "mini")
    copied = [0, 2, 4]  # positions among the processed docs
    train = write_jsonl(here / "train.jsonl", [{"text": docs[p]["q"]} for p in copied] + [{"text": "unrelated"}])
    scan(train, here / "out", here / "tasks", task="mini", include_path=str(here / "mini"))
    tasks = load_tasks([here / "tasks"], ["mini_decontaminated"])  # the source YAML is included by its path
    assert sorted(tasks) == ["mini_clean", "mini_flagged", "mini_full"]
    for name, positions in (
        ("mini_full", range(len(docs))),
        ("mini_flagged", copied),
        ("mini_clean", [p for p in range(len(docs)) if p not in copied]),
    ):
        assert [d["q"] for d in tasks[name].eval_docs] == [docs[p]["q"] for p in positions], name


@pytest.mark.slow
def test_an_empty_part_gets_no_task_and_a_message(here):
    docs = mini_task(here / "mini")
    printed: list[str] = []
    earlier = write_jsonl(here / "earlier.jsonl", [{"text": docs[0]["q"]}])
    scan(earlier, here / "first", here / "tasks", task="mini", include_path=str(here / "mini"))
    assert (here / "tasks" / "mini_flagged.yaml").exists()  # an earlier scan's flagged task, in the same DIR
    train = write_jsonl(here / "train.jsonl", [{"text": "nothing to see"}])
    result = scan(train, here / "out", here / "tasks", printed, task="mini", include_path=str(here / "mini"))
    assert any("no flagged items (by ngram13): no mini_flagged task written" in line for line in printed)
    assert not (here / "tasks" / "mini_flagged.yaml").exists()
    assert result["emitted_tasks"]["tasks"] == ["mini_full", "mini_clean"]
    report = (here / "out" / "report.md").read_text()
    assert "lm-eval tasks mini_full, mini_clean (group mini_decontaminated): 20 clean, 0 flagged" in report
    tasks = load_tasks([here / "tasks"], ["mini_decontaminated"])
    assert sorted(tasks) == ["mini_clean", "mini_full"] and len(tasks["mini_clean"].eval_docs) == len(docs)


@pytest.mark.slow
def test_mmlu_parts_are_per_subject_tasks_under_groups(here):
    from rephraser.benchmarks import get_benchmark

    items = get_benchmark("mmlu", subjects=["sociology", "abstract_algebra"]).items()
    long = [i for i in items if i.id.startswith("mmlu/sociology/") and len(i.text.split()) >= 20][:2]
    train = write_jsonl(here / "train.jsonl", [{"text": i.text} for i in long])
    result = scan(train, here / "out", here / "tasks", benchmark="mmlu", subjects=["sociology", "abstract_algebra"])
    assert result["emitted_tasks"]["flagged"] == 2
    names = sorted(p.name for p in (here / "tasks").iterdir())
    assert "mmlu_sociology_flagged.yaml" in names and "mmlu_abstract_algebra_flagged.yaml" not in names
    assert "mmlu_abstract_algebra_clean.yaml" in names and "_mmlu_clean.yaml" in names
    tasks = load_tasks([here / "tasks"], ["mmlu_decontaminated"])
    assert [d["id"] for d in tasks["mmlu_sociology_flagged"].eval_docs] == [i.id for i in long]
    clean = len(tasks["mmlu_sociology_clean"].eval_docs) + len(tasks["mmlu_abstract_algebra_clean"].eval_docs)
    emitted = result["emitted_tasks"]
    assert clean == emitted["clean"] and clean + 2 + emitted["undecided"] == len(items)  # short items: undecided
    assert 0 < emitted["undecided"] <= sum(len(i.text.split()) < 16 for i in items)  # short: no 13-gram to find


def test_flag_by_must_name_a_detector_the_scan_runs_and_needs_emit_tasks(here):
    from rephraser.detect.config import ScanConfig
    from rephraser.errors import ConfigError

    train = write_jsonl(here / "train.jsonl", [{"text": "a row"}])
    with pytest.raises(ConfigError, match=r"flag_by: --method ngram does not run the embedding detector"):
        scan(train, here / "out", here / "tasks", benchmark="gsm8k", flag_by="embedding")
    assert not (here / "out").exists() and not (here / "tasks").exists()
    with pytest.raises(ConfigError, match=r"flag_by: a setting of --emit-tasks DIR"):
        ScanConfig(train=str(train), out="o", benchmark="gsm8k", flag_by="ngram13")


def test_undecided_items_are_in_neither_part_short_ones_included():
    """An item shorter than n words has no n-gram: a verbatim copy of it cannot be found, so it is undecided, not
    clean (it was put in _clean)."""
    from rephraser.detect.emit_tasks import part_of

    assert part_of({"ngram10": None, "ngram13": None, "pipeline": None}, "pipeline") is None  # no verdict
    assert part_of({"ngram10": None, "ngram13": None, "pipeline": False}, "any") is None  # too short for n-grams
    assert part_of({"ngram10": False, "ngram13": None}, "ngram13") is None
    assert part_of({"ngram10": True, "ngram13": None, "embedding": False}, "any") == "flagged"
    assert part_of({"ngram10": True, "ngram13": False, "embedding": False}, "ngram13") == "clean"


@pytest.mark.slow
def test_an_item_has_the_same_few_shot_prompt_in_full_clean_and_flagged(here):
    """lm-eval draws few-shot examples from one generator in document order: restricted to its clean items, a task
    gave them other examples than the full one did (0 of 1130 equal 2-shot prompts on GSM-8K), and a pool drawn
    from the evaluated split lost the flagged docs. Drawn per item, the prompts are equal; the pool is whole."""
    docs = mini_task(here / "mini")  # test split only: the few-shot pool is the evaluated split
    copied = [0, 2, 4]
    train = write_jsonl(here / "train.jsonl", [{"text": docs[p]["q"]} for p in copied] + [{"text": "unrelated"}])
    scan(train, here / "out", here / "tasks", task="mini", include_path=str(here / "mini"))
    tasks = load_tasks([here / "tasks"], ["mini_decontaminated"])
    prompts: dict[str, set] = {}
    for task in tasks.values():
        task.set_config(key="num_fewshot", value=2)
        task.set_fewshot_seed(1234)
        assert len(task.sampler.fewshot_docs()) == len(docs)
        task.build_all_requests(rank=0, world_size=1)
        for instance in task.instances:
            prompts.setdefault(instance.doc["q"], set()).add(instance.args[0])
    assert len(prompts) == len(docs) and all(len(p) == 1 for p in prompts.values())
    assert tasks["mini_clean"].data_fingerprint() != tasks["mini_flagged"].data_fingerprint()  # --cache_requests


@pytest.mark.slow
def test_a_task_whose_data_moved_since_the_scan_is_refused(here):
    """Selections are positions: a doc inserted before them made the flagged task score other items."""
    from rephraser.errors import InputError

    docs = mini_task(here / "mini")
    train = write_jsonl(here / "train.jsonl", [{"text": docs[p]["q"]} for p in (3, 4)])
    scan(train, here / "out", here / "tasks", task="mini", include_path=str(here / "mini"))
    data = here / "mini" / "data.jsonl"
    data.write_text(json.dumps({"q": "An inserted question?", "a": "0", "keep": True}) + "\n" + data.read_text())
    with pytest.raises(InputError, match="not the ones the scan saw there"):
        list(load_tasks([here / "tasks"], ["mini_flagged"])["mini_flagged"].eval_docs)


@pytest.mark.slow
def test_a_folder_holding_another_scans_tasks_is_refused(here):
    """A second test set emitted into the same DIR rewrote parts.json and removed the first one's tasks."""
    from rephraser.errors import InputError

    train = write_jsonl(here / "train.jsonl", [{"text": q} for q in gsm8k_tests()[:3]])
    scan(train, here / "out", here / "tasks", benchmark="gsm8k")
    mini_task(here / "mini")
    with pytest.raises(InputError, match="holds the tasks of another scan"):
        scan(train, here / "out2", here / "tasks", task="mini", include_path=str(here / "mini"))
    assert (here / "tasks" / "gsm8k_flagged.yaml").is_file()

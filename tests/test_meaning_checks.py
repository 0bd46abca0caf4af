"""The rephrase meaning checks (issue 19 items 10 and 34): a refusal, a fragment, a reply that stops asking, a
dropped number or a leaked answer is rejected, with the reason sent back to the model; `--task`'s check can fail."""

import json

import pytest

from rephraser.benchmarks.base import Item
from rephraser.benchmarks.checks import generic_reason

QUESTION = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
            "her friends every day with four. How many eggs does she sell?")  # fmt: skip


@pytest.mark.parametrize(
    "candidate, reason",
    [
        ("I'm sorry, I cannot do that. 16 2", "it is a refusal"),  # keeps the numbers: passed before
        ("Sorry, but I can't help with rephrasing this. 16", "it is a refusal"),
        ("As an AI language model, I would say: 16 eggs.", "it is a refusal"),
        ("16 eggs.", "too short to carry the same meaning"),
        ("Janet's ducks lay 16 eggs per day and she eats three of them and bakes with four.", "no longer asks"),
        ("Janet has ducks. " * 40 + "How many eggs?", "too long to be a rephrase"),
        ("", "the reply was empty"),
    ],
)
def test_non_rephrases_are_rejected(candidate, reason):
    assert reason in (generic_reason(QUESTION, candidate) or "")


def test_a_real_rephrase_passes_and_a_translation_is_checked_for_refusals_only():
    good = ("Each day Janet's ducks produce 16 eggs; three go into her breakfast and four into muffins for her "
            "friends. How many eggs are left for her to sell?")  # fmt: skip
    assert generic_reason(QUESTION, good) is None
    assert generic_reason(QUESTION, "珍妮的鸭子每天下16个蛋。她卖多少个？", translate="Chinese") is None
    assert "refusal" in generic_reason(QUESTION, "I'm sorry, I cannot translate this.", translate="Chinese")


def test_gsm8k_check_rejects_a_refusal_that_keeps_the_numbers(data_dir, monkeypatch):
    """Item 34: 'I'm sorry, I cannot do that. 16 2' kept every number and passed GSM-8K's check."""
    from rephraser.benchmarks import get_benchmark

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    bench = get_benchmark("gsm8k")
    item = Item(0, "gsm8k/0", "Tom has 16 apples and 2 pears. How many fruits does he have?", {})
    candidates = ["I'm sorry, I cannot do that. 16 2", "Tom owns 16 apples as well as pears. What is his fruit count?",
                  "Tom owns 16 apples and 2 pears in all. What is the number of his fruits?"]  # fmt: skip
    reasons = bench.check([item] * 3, candidates)
    assert "refusal" in reasons[0] and "dropped the number(s) 2" in reasons[1] and reasons[2] is None


@pytest.fixture
def qa_task(tmp_path):
    rows = [
        {"question": "What is the name of the largest planet of the solar system, the one with a red spot?",
         "answer": "Jupiter"},
        {"question": "How many legs do 3 spiders and 2 ants have together, counting every leg?", "answer": "36"},
    ]  # fmt: skip
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "qa_local.yaml").write_text(
        f"task: qa_local\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'qa.jsonl'}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: "
        '"Q: {{question}}\\nA:"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: exact_match\n"
    )
    return tmp_path


@pytest.mark.slow
def test_task_check_can_fail_now(qa_task, monkeypatch):
    """Item 10: `--task`'s check compared fields it had just copied, so it never failed."""
    from rephraser.benchmarks.task import TaskBenchmark

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    bench = TaskBenchmark("qa_local", include_path=str(qa_task))
    planet, legs = bench.items()
    candidates = [
        (planet, "Which planet, the one with a great red spot, is the biggest in our solar system?", None),
        (planet, "I'm sorry, I cannot rephrase this question.", "refusal"),
        (planet, "Jupiter is the largest planet of the solar system: which is the one with a red spot?", "answer away"),
        (legs, "Counting every single leg, how many legs do spiders and 2 ants have?", "dropped the number(s) 3"),
        (legs, "Legs.", "too short"),
    ]  # fmt: skip
    reasons = bench.check([c[0] for c in candidates], [c[1] for c in candidates])
    for (_, _, expected), reason in zip(candidates, reasons):
        assert (reason is None) if expected is None else (expected in reason), (expected, reason)


@pytest.mark.slow
def test_task_check_asks_the_judge_only_about_what_passed(qa_task, monkeypatch):
    from rephraser.benchmarks.task import TaskBenchmark

    class Judge:
        asked = []

        def judge_pairs(self, pairs):
            self.asked += pairs
            return [False, None][: len(pairs)]

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    judge = Judge()
    bench = TaskBenchmark("qa_local", include_path=str(qa_task), judge=judge)
    planet, legs = bench.items()
    reasons = bench.check([planet, planet, legs], [
        "Which planet, the one with a great red spot, is the biggest in our solar system?",
        "I'm sorry, I cannot rephrase this question.",
        "Counting every single leg, how many legs do 3 spiders and 2 ants have in total?",
    ])  # fmt: skip
    assert len(judge.asked) == 2  # the refusal never reached the judge
    assert reasons[0] == "the judge did not confirm it means the same"
    assert "refusal" in reasons[1] and reasons[2] == "the judge did not confirm it means the same (no verdict)"

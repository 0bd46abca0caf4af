"""rephraser.detect.ngrams: the hashed n-gram stage flags exactly what rephraser.overlap's exact measure flags.

Every comparison is against overlap.NgramIndex (row by row, as `detect scan` uses it) and overlap.OverlapMeter
(on every row x test pair: a shared run of n or more words). Texts are built to sit on the boundaries: planted
shared runs of 9/10/12/13/14 words, punctuation and case variants, every Unicode whitespace character,
non-ASCII words, empty and short rows, runs cut by a row boundary, and random texts over a tiny vocabulary
(where shared n-grams are common).
"""

import json
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
from conftest import offline_env

from rephraser.detect.ngram_bytes import normalised_bytes, word_spans
from rephraser.detect.ngrams import MATCHES_KEPT, HashedNgrams, NgramTally
from rephraser.overlap import NgramIndex, OverlapMeter, words

NS = (10, 13)
SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
VOCAB = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def sentence(rng: random.Random, k: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(k)]


def planted(rng: random.Random, tests: list[str], run: int, dress=lambda w, rng: w) -> str:
    """A row holding `run` consecutive words of a random test item between unrelated words."""
    source = words(rng.choice(tests))
    at = rng.randrange(max(len(source) - run, 0) + 1)
    noise = lambda: ["unrelated", "filler", str(rng.randrange(10**6))]  # noqa: E731
    return " ".join(noise() + [dress(w, rng) for w in source[at : at + run]] + noise())


def dressed(word: str, rng: random.Random) -> str:
    """The same word for lm-eval's normalisation: other ASCII case, punctuation around and inside it."""
    word = "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    return rng.choice(["", "(", '"', "--"]) + word[:1] + rng.choice(["", "'", "."]) + word[1:] + rng.choice(",.;:!?")


def items_of(rng: random.Random, count: int = 12) -> list[str]:
    return [" ".join(sentence(rng, rng.randrange(12, 40))) for _ in range(count)]


def case_planted(rng):
    tests = items_of(rng)
    return tests, [planted(rng, tests, run) for run in (9, 10, 12, 13, 14) * 8]


def case_punctuation_and_case(rng):
    tests = items_of(rng)
    rows = [planted(rng, tests, run, dressed) for run in (9, 10, 12, 13, 14) * 8]
    rows += [" -- ".join(words(t)[:11]) for t in tests]  # a punctuation-only token vanishes: the run continues
    rows += [" ".join(words(t)[:11]).replace(" ", " . ") for t in tests]
    rows += [" ".join(words(t)[:11]).replace(" ", ".") for t in tests]  # "a.b" is one word "ab": no match
    return tests, rows


def case_unicode_whitespace(rng):
    tests = items_of(rng) + ["Über naïve 日本語 café " * 4, "x\x00y \ud800 ÿ \uffff 🙂 e\u0301 ﬁ " * 4]
    rows = []
    for space in SPACES:  # every separator str.split() knows, inside runs of 10 and 13 words
        for t in tests:
            rows.append(space.join(words(t)[:13]))
            rows.append(f"w{space}".join(words(t)[:10]))  # joined by "w" + space: different words
    rows += ["über naïve 日本語 café " * 4, "ÜBER naïve 日本語 café " * 4]  # only ASCII letters are lowered
    rows += ["x\x00y \ud800 ÿ \uffff 🙂 e\u0301 ﬁ " * 4, "xy \ud800 ÿ \uffff 🙂 é ﬁ " * 4]
    return tests, rows


def case_empty_and_short(rng):
    tests = items_of(rng) + ["", "one two three", " ".join(VOCAB[:10]), " ".join(VOCAB[:13])]
    rows = ["", " ", "\n\n", "...", "!", "word", " ".join(VOCAB[:9]), " ".join(VOCAB[:10]), " ".join(VOCAB[:13])]
    rows += [" ".join(VOCAB[1:11]), " ".join(VOCAB[:12]), "", " ".join(VOCAB[:14])]
    return tests, rows


def case_row_boundaries(rng):
    tests = items_of(rng)
    rows = []
    for t in tests:  # a run cut in two by the end of a row matches neither half
        w = words(t)
        rows += [" ".join(w[:6]), " ".join(w[6:14]), " ".join(w[:10]) + " ", "\n" + " ".join(w[1:14]) + "\n"]
    return tests, rows


def case_tiny_vocabulary(rng):
    vocab = ["a", "b", "A", "b.", "c"]
    tests = [" ".join(rng.choice(vocab) for _ in range(rng.randrange(5, 40))) for _ in range(30)]
    rows = [" ".join(rng.choice(vocab) for _ in range(rng.randrange(0, 60))) for _ in range(300)]
    return tests, rows


def case_repeated_tests(rng):
    tests = items_of(rng, 6)
    tests += [tests[0], tests[1] + " " + tests[1]]  # a duplicate item; an n-gram twice in one item
    return tests, [planted(rng, tests, 13) for _ in range(40)] + tests


CASES = {
    "planted runs 9/10/12/13/14": case_planted,
    "punctuation and case variants": case_punctuation_and_case,
    "unicode whitespace and non-ascii words": case_unicode_whitespace,
    "empty and short rows and tests": case_empty_and_short,
    "runs cut by a row boundary": case_row_boundaries,
    "random texts over a tiny vocabulary": case_tiny_vocabulary,
    "duplicate and self-repeating test items": case_repeated_tests,
}


def exact_sets(tests: list[str], rows: list[str], n: int) -> list[set[int]]:
    index = NgramIndex(tests, n)
    return [index.matches(r) for r in rows]


@pytest.mark.parametrize("case", sorted(CASES))
def test_hashed_stage_flags_exactly_the_rows_ngram_index_flags(case):
    tests, rows = CASES[case](random.Random(case))
    found = HashedNgrams(tests, NS).match_batch(rows)
    for n in NS:
        expected = exact_sets(tests, rows, n)
        assert found[n].row_sets(len(rows)) == expected, f"n={n}"
        assert any(expected)  # the case does flag rows
        assert found[n].rejected == 0  # 64-bit hashes: every candidate was a real match (none crossed a row)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hashed_stage_agrees_with_overlap_meter_on_every_pair(case):
    tests, rows = CASES[case](random.Random(case))
    found = HashedNgrams(tests, NS).match_batch(rows)
    shared = np.array([[OverlapMeter(t).measure(r).words for t in tests] for r in rows]).reshape(len(rows), -1)
    for n in NS:
        flagged = np.zeros_like(shared, dtype=bool)
        flagged[found[n].rows, found[n].tests] = True
        assert (flagged == (shared >= n)).all(), f"n={n}: pairs differ at {np.argwhere(flagged != (shared >= n))}"


def test_planted_runs_are_flagged_from_ten_and_thirteen_words_on():
    tests = [" ".join(VOCAB)]
    rows = [planted(random.Random(run), tests, run) for run in (9, 10, 12, 13, 14)]
    found = HashedNgrams(tests, NS).match_batch(rows)
    assert found[10].rows.tolist() == [1, 2, 3, 4]
    assert found[13].rows.tolist() == [3, 4]


def test_normalised_words_equal_overlap_words_for_every_code_point():
    """Every character between letters, 4096 code points a row: the words and their rows are overlap.words'."""
    chars = list(map(chr, range(sys.maxunicode + 1)))
    rows = ["".join(f"a{c}B{c} " for c in chars[k : k + 4096]) for k in range(0, len(chars), 4096)]
    data = normalised_bytes(rows)
    spans = word_spans(data)
    got = [data[a:b].decode("utf-8", "surrogatepass") for a, b in zip(spans.starts.tolist(), spans.ends.tolist())]
    expected = [words(row) for row in rows]
    assert got == [w for row in expected for w in row]
    assert spans.rows_of(np.arange(len(got))).tolist() == [r for r, row in enumerate(expected) for _ in row]


def test_a_forced_hash_collision_is_caught_by_the_verification():
    """With 4-bit n-gram hashes nearly every window collides with some test n-gram: the verification must
    reject all of those candidates and keep exactly the true matches."""
    tests, rows = case_planted(random.Random(7))
    loose = HashedNgrams(tests, NS, hash_bits=4)
    found = loose.match_batch(rows)
    for n in NS:
        assert found[n].row_sets(len(rows)) == exact_sets(tests, rows, n)
        assert found[n].rejected > 0  # collisions happened and were thrown out
    assert all(m.rejected == 0 for m in HashedNgrams(tests, NS).match_batch(rows).values())


def reference_first_pass(tests: list[str], rows: list[str], tmp_path) -> dict:
    """What `rephraser detect scan` computed before it used this stage: its first pass over a JSONL file,
    overlap.NgramIndex.matches per row and n, counts and the first MATCHES_KEPT rows per test item."""
    from rephraser.detect.training import TrainingSource

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    indexes = {n: NgramIndex(tests, n) for n in NS}
    found = {"counts": {n: [0] * len(tests) for n in NS}, "hits": {n: [[] for _ in tests] for n in NS}}
    for row, text in TrainingSource(str(path)):
        for n, index in indexes.items():
            for t in index.matches(text):
                found["counts"][n][t] += 1
                if len(found["hits"][n][t]) < MATCHES_KEPT:
                    found["hits"][n][t].append(row)
    return found


def shards(rng: random.Random, rows: list[str]) -> list[tuple[int, list[str]]]:
    cuts = sorted(rng.sample(range(1, len(rows)), 9))
    return [(a, rows[a:b]) for a, b in zip([0, *cuts], [*cuts, len(rows)])]


def test_tally_of_shards_in_any_order_equals_the_scans_first_pass(tmp_path):
    rng = random.Random(3)
    tests, rows = case_tiny_vocabulary(rng)
    expected = reference_first_pass(tests, rows, tmp_path)
    index = HashedNgrams(tests, NS)
    whole = NgramTally(len(tests), NS)
    whole.add(index.match_batch(rows))
    parts = []
    for start, texts in shards(rng, rows):
        part = NgramTally(len(tests), NS)
        part.add(index.match_batch(texts), start=start)
        parts.append(part)
    for attempt in range(3):
        rng.shuffle(parts)
        merged = parts[0]
        for part in parts[1:]:
            merged = part.merge(merged) if attempt % 2 else merged.merge(part)
        for tally in (whole, merged):
            for n in NS:
                assert tally.counts[n].tolist() == expected["counts"][n]
                assert tally.first_rows(n) == expected["hits"][n]
    assert max(map(len, expected["hits"][10])) == MATCHES_KEPT  # the cut at 5 rows was exercised


def test_tally_takes_row_ids_for_batches_of_scattered_rows():
    tests, rows = case_planted(random.Random(5))
    index = HashedNgrams(tests, NS)
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    tally = NgramTally(len(tests), NS)
    for k in range(0, len(order), 7):  # batches of rows from anywhere, as a Ray shard may hold them
        ids = order[k : k + 7]
        tally.add(index.match_batch([rows[i] for i in ids]), row_ids=np.array(ids))
    for n in NS:
        exact = exact_sets(tests, rows, n)
        assert tally.counts[n].tolist() == [sum(t in s for s in exact) for t in range(len(tests))]
        assert tally.first_rows(n) == [[r for r, s in enumerate(exact) if t in s][:MATCHES_KEPT] for t in range(12)]


def test_merge_refuses_tallies_of_other_test_sets():
    with pytest.raises(ValueError, match="merge"):
        NgramTally(3, NS).merge(NgramTally(4, NS))


def pickled_leaves(state):
    """Every value a pickled index carries, containers opened (a _Table by its own pickled state)."""
    if isinstance(state, dict):
        for value in state.values():
            yield from pickled_leaves(value)
    elif isinstance(state, tuple | list):
        for value in state:
            yield from pickled_leaves(value)
    elif hasattr(state, "__getstate__") and not isinstance(state, np.ndarray | bytes | int | str | None):
        yield from pickled_leaves(state.__getstate__() if callable(state.__getstate__) else vars(state))
    else:
        yield state


def test_pickled_index_matches_the_same_and_carries_only_arrays_and_bytes():
    tests, rows = case_punctuation_and_case(random.Random(11))
    index = HashedNgrams(tests, NS)
    copy = pickle.loads(pickle.dumps(index))
    for n in NS:
        a, b = index.match_batch(rows)[n], copy.match_batch(rows)[n]
        assert a.rows.tolist() == b.rows.tolist() and a.tests.tolist() == b.tests.tolist()
    kinds = {type(leaf).__name__ for leaf in pickled_leaves(index.__getstate__())}
    assert kinds <= {"ndarray", "bytes", "int", "NoneType"}, (
        kinds
    )  # no dict of word tuples, no Python objects per n-gram
    exact = pickle.dumps([NgramIndex(tests, n) for n in NS])
    assert len(pickle.dumps(index)) < len(exact)


@pytest.mark.slow
def test_an_index_pickled_here_matches_the_same_in_another_process(tmp_path):
    """A Ray worker is another interpreter (another string-hash seed): its hashes must agree with ours."""
    tests, rows = case_unicode_whitespace(random.Random(2))
    (tmp_path / "index.pkl").write_bytes(pickle.dumps(HashedNgrams(tests, NS)))
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    script = (
        "import json, pickle, sys; from pathlib import Path; d = Path(sys.argv[1]);"
        "index = pickle.loads((d / 'index.pkl').read_bytes()); rows = json.loads((d / 'rows.json').read_text());"
        "print(json.dumps({n: m.rows.tolist() + m.tests.tolist() for n, m in index.match_batch(rows).items()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=offline_env(PYTHONHASHSEED="12345"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    here = HashedNgrams(tests, NS).match_batch(rows)
    assert json.loads(done.stdout) == {str(n): m.rows.tolist() + m.tests.tolist() for n, m in here.items()}


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="ns"):
        HashedNgrams(["a b c"], ns=(0,))
    with pytest.raises(ValueError, match="hash_bits"):
        HashedNgrams(["a b c"], hash_bits=0)


def test_a_batch_matched_in_pieces_gives_the_same_pairs(monkeypatch):
    """Large batches are matched in pieces of about SLICE_CHARS characters: the pieces' row positions and
    counts must join up."""
    from rephraser.detect import ngrams

    tests, rows = case_planted(random.Random(9))
    whole = HashedNgrams(tests, NS).match_batch(rows)
    monkeypatch.setattr(ngrams, "SLICE_CHARS", 300)
    pieces = HashedNgrams(tests, NS).match_batch(rows)
    assert len(ngrams._slices(rows)) > 10
    for n in NS:
        assert pieces[n].rows.tolist() == whole[n].rows.tolist()
        assert pieces[n].tests.tolist() == whole[n].tests.tolist()
        assert pieces[n].row_sets(len(rows)) == exact_sets(tests, rows, n)


@pytest.mark.parametrize("dtype", [object, str])
def test_a_numpy_column_of_texts_is_a_batch_too(dtype):
    """Ray Data hands map_batches a column as a numpy array (object or fixed-width unicode)."""
    tests, rows = case_punctuation_and_case(random.Random(4))
    index = HashedNgrams(tests, NS)
    as_list, as_array = index.match_batch(rows), index.match_batch(np.array(rows, dtype=dtype))
    for n in NS:
        assert as_array[n].rows.tolist() == as_list[n].rows.tolist()
        assert as_array[n].tests.tolist() == as_list[n].tests.tolist()


def test_an_empty_batch_and_an_empty_test_set_match_nothing():
    tests, rows = case_planted(random.Random(1))
    for index, batch in ((HashedNgrams(tests, NS), []), (HashedNgrams([], NS), rows)):
        found = index.match_batch(batch)
        assert all(len(found[n].rows) == len(found[n].tests) == 0 for n in NS)

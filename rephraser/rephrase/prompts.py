"""The prompts: readable files beside this module, one per kind of benchmark and mode.

    messages = first_messages("math", "paraphrase", text)                # [{"role": "user", ...}]
    messages = retry_messages(previous_messages, candidate, feedback)     # the conversation continued

Kinds: math (GSM-8K), knowledge (MMLU), code (HumanEval), text (any lm-eval task); modes: paraphrase,
translate (`--translate LANG`). `--prompt-file` replaces the first prompt; `{text}` and `{language}` are filled
in by plain replacement (prompts and programs are full of braces). A rejected attempt is answered in the same
conversation with the reason (the overlapping words, or the failed check), so the next attempt can avoid it.
"""

from __future__ import annotations

from pathlib import Path

from rephraser.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


def template(kind: str, mode: str, prompt_file: str | None = None) -> str:
    path = Path(prompt_file) if prompt_file else PROMPTS_DIR / f"{kind}_{mode}.txt"
    if not path.is_file():
        raise ConfigError(f"prompt_file: {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if "{text}" not in text:
        raise ConfigError(f"prompt_file: {path} has no {{text}} placeholder for the item to rephrase")
    return text


def fill(template_text: str, **values: str) -> str:
    for key, value in values.items():
        template_text = template_text.replace("{" + key + "}", value)
    return template_text


def first_messages(prompt: str, item_text: str, language: str | None) -> list[dict]:
    return [{"role": "user", "content": fill(prompt, text=item_text, language=language or "")}]


def retry_messages(messages: list[dict], candidate: str, feedback: str) -> list[dict]:
    return [*messages, {"role": "assistant", "content": candidate}, {"role": "user", "content": feedback}]


def overlap_feedback(words: int, run: str) -> str:
    return fill((PROMPTS_DIR / "retry_overlap.txt").read_text(encoding="utf-8"), words=str(words), run=run).strip()


def check_feedback(reason: str) -> str:
    return fill((PROMPTS_DIR / "retry_check.txt").read_text(encoding="utf-8"), reason=reason).strip()

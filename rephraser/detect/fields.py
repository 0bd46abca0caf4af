"""Where a training row's text is: `--train-field` as a field name, a dotted path, or a list of chat turns.

    field = TextField("messages")              # a list of {role, content} turns: the contents joined by "\\n"
    field = TextField("conversation.text")     # a dotted path into nested objects (JSON objects, parquet structs)
    field = TextField("turns.0.content")       # an integer step indexes a list
    text = field.text(row)                     # str, or BadValue(why) for a row that has no text there
    field.check_arrow(schema)                  # parquet: the path and its type checked before any row is read

A value is a row's text when it is a string (an empty string is a row that matches nothing), or a list of chat
turns: objects with a "content" (OpenAI / Hugging Face chat format; a content may be a list of text parts) or a
"value" (ShareGPT) string, whose texts are joined with newlines in order, every role included (a rephrased test
item may sit in any turn). A turn whose content is null (a tool call) adds nothing. Anything else (null, a
number, an object, a list of other things, a missing field) is a bad row: an error naming the file and line, or
counted under --skip-bad-lines; it is never scanned as "" (which would count as a clean row).
"""

from __future__ import annotations

TURN_TEXT_KEYS = ("content", "value")  # OpenAI / HF chat, ShareGPT
TURN_SEPARATOR = "\n"


class BadValue(ValueError):
    """A row has no text at the field path: the reason, for the bad-row message."""


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return f"an object (keys {sorted(value)[:8]})"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _turn_text(turn, position: int) -> str:
    if not isinstance(turn, dict):
        raise BadValue(f"a list whose item {position} is {_describe(turn)}: neither text nor a chat turn")
    key = next((k for k in TURN_TEXT_KEYS if k in turn), None)
    if key is None:
        raise BadValue(f"a list whose item {position} has no {' or '.join(TURN_TEXT_KEYS)} (keys {sorted(turn)[:8]})")
    content = turn[key]
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):  # OpenAI content parts
        return "".join(p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str))
    raise BadValue(f"a chat turn (item {position}) whose {key} is {_describe(content)}, not text")


class TextField:
    def __init__(self, spec: str):
        if not spec or any(not step for step in spec.split(".")):
            raise ValueError(f"train_field: {spec!r} is not a field name or dotted path (e.g. text, conversation.text)")
        self.spec, self.steps = spec, spec.split(".")

    def _walk(self, row):
        value = row
        for depth, step in enumerate(self.steps):
            where = ".".join(self.steps[:depth]) or "the row"
            if isinstance(value, dict):
                if step not in value:
                    raise BadValue(f"missing (keys of {where}: {sorted(value)[:12]}); choose it with --train-field")
                value = value[step]
            elif isinstance(value, list) and step.isdigit():
                if int(step) >= len(value):
                    raise BadValue(f"missing ({where} has {len(value)} items)")
                value = value[int(step)]
            else:
                raise BadValue(f"missing ({where} is {_describe(value)}, not an object); choose it with --train-field")
        return value

    def text(self, row) -> str:
        value = self._walk(row)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return TURN_SEPARATOR.join(_turn_text(turn, k) for k, turn in enumerate(value))
        raise BadValue(f"{_describe(value)}, not text or a list of chat turns")

    def check_arrow(self, schema) -> str | None:
        """Why a parquet file's schema cannot hold text at this path (None: it can, or it cannot be told from the
        types alone). Read before any row, so a wrong --train-field fails before the scan."""
        import pyarrow as pa

        if self.steps[0] not in schema.names:
            return f"no column {self.steps[0]!r} (columns: {schema.names}); use --train-field"
        kind = schema.field(self.steps[0]).type
        for depth, step in enumerate(self.steps[1:], start=1):
            where = ".".join(self.steps[:depth])
            if pa.types.is_struct(kind):
                names = [kind.field(i).name for i in range(kind.num_fields)]
                if step not in names:
                    return f"{where} has no field {step!r} (fields: {names}); use --train-field"
                kind = kind.field(names.index(step)).type
            elif _is_list(kind) and step.isdigit():
                kind = kind.value_type
            else:
                return f"{where} is {kind}, not a struct with a field {step!r}"
        if _is_text(kind) or pa.types.is_null(kind):
            return None
        if _is_list(kind) and pa.types.is_struct(kind.value_type):
            names = {kind.value_type.field(i).name for i in range(kind.value_type.num_fields)}
            if names & set(TURN_TEXT_KEYS):
                return None
        return f"{self.spec} is {kind}: not text or a list of chat turns ({' or '.join(TURN_TEXT_KEYS)})"


def _is_text(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _is_list(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)

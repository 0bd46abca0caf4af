"""Errors the user can act on. The CLI prints them as one line and exits non-zero (no traceback)."""


class RephraserError(Exception):
    """Base class: anything wrong with the user's input, files or configuration."""


class InputError(RephraserError):
    """Bad input data, located as precisely as we can: file, line and field."""

    def __init__(self, path, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ConfigError(RephraserError):
    """A configuration value is missing or invalid; the message names the field."""

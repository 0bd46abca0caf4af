"""Reading training rows and the token-file format (`rows`, `tokfile`), and the tokenize step (`tokenize`)."""

from rephraser.data.tokfile import Sample, TokenFile, TokenFileWriter

__all__ = ["Sample", "TokenFile", "TokenFileWriter"]

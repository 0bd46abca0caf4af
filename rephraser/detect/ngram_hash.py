"""64-bit hashes of words and of windows of words, computed over numpy arrays (for rephraser.detect.ngrams).

    hasher = Hasher()
    words = hasher.words(data, spans.starts, spans.ends)   # uint64 per word of the normalised bytes `data`
    windows = hasher.windows(words)     # windows.every(n), windows.of(first, n): hashes of words[first:first+n]

A word of up to 8 bytes is its bytes read as one little-endian integer; a longer word is a polynomial of its
8-byte chunks; then its length is mixed in, and a multiply and an xor-shift make it non-linear in the bytes.
A window's hash is the polynomial sum(word[i] * B^(n-1-i)) mod 2^64, read off prefix sums of word[j] * B^-j
(B is odd, hence invertible mod 2^64): the same value wherever the window stands, two lookups and a product
per window, every n from the same sums. Equal words always hash equally; different ones may collide (rarely):
callers verify what a hash finds. Deterministic, no per-process salt: a worker's hashes agree with the
driver's. Written by hand: numpy has no hash of variable-length byte spans, and hashing word by word in Python
(hashlib, xxhash) costs a call per word.
"""

from __future__ import annotations

import numpy as np

_CHUNK_BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2^64
_WORD_BASE = 0xC2B2AE3D27D4EB4F
_LENGTH_SALT = np.uint64(0xD6E8FEB86659FD93)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)  # the low k bytes of a lane


def mix(x: np.ndarray) -> np.ndarray:
    """A multiply and an xor-shift (half of splitmix64's finaliser; a bijection of uint64), in place: enough
    to make the word hash non-linear in its bytes (the window polynomial multiplies again)."""
    x *= _MIX
    x ^= x >> np.uint64(32)
    return x


class _Powers:
    """base^0 .. base^(k-1) mod 2^64 and the same of base's inverse, grown (doubling) as longer batches come."""

    def __init__(self, base: int):
        self.base, self.inverse = base, pow(base, -1, 1 << 64)
        self.up = self.down = np.ones(1, np.uint64)

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) < length:
            size = max(length, 2 * len(self.up))
            self.up, self.down = (np.cumprod(np.full(size, b, np.uint64)) for b in (self.base, self.inverse))
            self.up[1:], self.down[1:] = self.up[:-1].copy(), self.down[:-1].copy()  # start at base^0
            self.up[0] = self.down[0] = 1
        return self.up[:length], self.down[:length]


class Polynomials:
    """Prefix sums of values[j] * base^-j: then the polynomial sum(values[j] * base^(stop-1-j) for j in
    [start, stop)) of any span of `values` costs two lookups and a product (mod 2^64)."""

    def __init__(self, values: np.ndarray, powers: _Powers):
        self.up, down = powers.get(len(values))
        self.sums = np.empty(len(values) + 1, np.uint64)  # (np.zeros of this size costs fresh pages each time)
        self.sums[0] = 0
        np.cumsum(np.multiply(values, down, dtype=np.uint64), out=self.sums[1:])

    def of(self, first: np.ndarray, n: int | np.ndarray) -> np.ndarray:
        """The polynomial of values[first:first + n], for every first."""
        stop = first + n
        return (self.sums.take(stop) - self.sums.take(first)) * self.up.take(stop - 1)

    def every(self, n: int) -> np.ndarray:
        """The polynomial of values[k:k + n] for every k from 0 to len(values) - n (slices: no lookups)."""
        if len(self.sums) <= n:
            return np.zeros(0, np.uint64)
        return (self.sums[n:] - self.sums[:-n]) * self.up[n - 1 :]


def ranks(sizes: np.ndarray) -> np.ndarray:
    """0..size-1 for each group of the given sizes, concatenated: [2, 3] -> [0, 1, 0, 1, 2]."""
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)


class Hasher:
    """Word and window hashes; holds the power tables (grown to the longest batch seen, not worth pickling)."""

    def __init__(self):
        self._chunk_powers, self._word_powers = _Powers(_CHUNK_BASE), _Powers(_WORD_BASE)

    def words(self, data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The hash of every word data[starts[i]:ends[i]]; `data` ends with 7 or more bytes after its last word
        (ngram_bytes.normalised_bytes pads it so)."""
        lanes = np.ndarray((len(data) - 7,), "<u8", data, 0, (1,))  # lanes[i]: bytes i..i+7, in place
        length = ends - starts
        hashes = lanes[starts] & _MASKS.take(np.minimum(length, 8))  # (take would copy the strided view)
        long = np.flatnonzero(length > 8)
        if len(long):  # few words: their chunks' polynomial
            chunks = (length[long] + 7) >> 3
            at = np.repeat(starts[long], chunks) + 8 * ranks(chunks)
            values = lanes[at] & _MASKS[np.minimum(np.repeat(ends[long], chunks) - at, 8)]
            hashes[long] = Polynomials(values, self._chunk_powers).of(np.cumsum(chunks) - chunks, chunks)
        hashes ^= length.view(np.uint64) * _LENGTH_SALT
        return mix(hashes)

    def windows(self, word_hashes: np.ndarray) -> Polynomials:
        return Polynomials(word_hashes, self._word_powers)

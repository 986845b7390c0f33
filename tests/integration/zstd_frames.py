"""zstd frames written by hand (RFC 8878), for tests that need a given
compressed form without a zstd module: a frame of RLE blocks, which
inflates a few bytes to any length."""
import struct

BLOCK_MAX = 128 * 1024


def rle(plain):
    """A frame whose content is `plain`, which must repeat one byte."""
    assert plain and plain == plain[:1] * len(plain)
    # Frame header: 8-byte content size, single segment, no checksum.
    out = bytearray(struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", len(plain)))
    left = len(plain)
    while left:
        n = min(left, BLOCK_MAX)
        left -= n
        out += struct.pack("<I", (1 if not left else 0) | (1 << 1) | (n << 3))[:3] + plain[:1]
    return bytes(out)

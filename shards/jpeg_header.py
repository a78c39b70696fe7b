"""The size a JPEG declares in its frame header, read without decoding anything.

A decoder allocates width x height x 3 bytes as soon as it has read that header, so a crafted
header of 30000 x 30000 costs 2.7 GB before a single pixel is checked; readers compare the size
declared here with their bound first.
"""

from __future__ import annotations

# Start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_START_OF_SCAN, _END_OF_IMAGE = 0xDA, 0xD9


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first frame header, or None when the markers before it do not parse
    (the decoder then reports the damage)."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in (_START_OF_SCAN, _END_OF_IMAGE):
            return None
        if marker in _FRAME_MARKERS:
            if at + 9 > len(data):
                return None
            height = int.from_bytes(data[at + 5:at + 7], "big")
            width = int.from_bytes(data[at + 7:at + 9], "big")
            return width, height
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None

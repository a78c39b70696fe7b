"""The shard-set format (version 1): the only contract between ``generate`` and ``train``."""

from shards.reader import ShardSet, decode_view, open_set
from shards.schema import (FORMAT_NAME, FORMAT_VERSION, CorruptSampleError, Group, ShardSetError)
from shards.set_writer import SetWriter

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CorruptSampleError", "Group", "ShardSet",
           "SetWriter", "ShardSetError", "decode_view", "open_set"]

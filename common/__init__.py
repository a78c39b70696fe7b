"""The helper floor: what every package needs and is not the shard-set format.

Atomic files and sha256 (``common.files``), provenance (``common.provenance``), one base class for
errors meant for users and the console reporting of them (``common.errors``, ``common.console``),
and a bounded parallel map (``common.parallel``). Nothing here imports any other genviews package.
"""

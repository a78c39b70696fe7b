"""``python -m shards {info,verify,show,ingest}``."""

from shards.cli import main

main()

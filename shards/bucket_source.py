"""Files in a bucket or on the Hugging Face Hub (s3://, gs://, hf://) through fsspec: a
``shards.storage`` source that reads an object in ranged chunks, and the file system that
``shards copy`` writes through.

Each scheme's library is an optional extra (``pip install -e '.[s3]'``, ``[gcs]``, ``[hf]``); s3
takes its endpoint, region and credentials from the standard AWS variables and files
(AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ~/.aws/...), gs and hf from their own.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from shards.schema import ShardSetError
from shards.transport import EndOfData, Fault, Refusal, scheme_of

CHUNK = 4 << 20  # bytes per ranged read: one request each

# scheme -> (the module it needs, the extra that installs it, the file system's options for a timeout)
SCHEMES: dict[str, tuple[str, str, Callable[[float], dict[str, Any]]]] = {
    "s3": ("s3fs", "s3", lambda timeout: {"config_kwargs": {
        "connect_timeout": timeout, "read_timeout": timeout,
        "retries": {"max_attempts": 1}}}),  # botocore's own tries off: shards.storage counts them
    "gs": ("gcsfs", "gcs", lambda timeout: {"requests_timeout": timeout}),  # gcsfs bounds each request whole
    "hf": ("huggingface_hub", "hf", lambda timeout: {}),
}


class MissingExtraError(ShardSetError):
    """A scheme's library is not installed."""


def bucket_filesystem(location: str, timeout: float) -> Any:
    """The fsspec file system of ``location``'s scheme (s3, gs or hf), or one sentence naming the
    extra to install."""
    scheme = scheme_of(location)
    module, extra, options = SCHEMES[scheme]
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{scheme}:// sets need the {module} package: pip install 'genviews[{extra}]' "
                                f"(or pip install -e '.[{extra}]' in a checkout).")
    import fsspec

    fs = fsspec.filesystem(scheme, **options(timeout))
    if scheme == "s3":
        fs.retries = 1  # s3fs's own tries (5, a class setting, not an option) off too: shards.storage counts them
    return fs


class BucketSource:
    piece = CHUNK
    read_ahead = 2

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.fs = bucket_filesystem(url, timeout)

    def open(self, start: int) -> ChunkBody:
        try:
            size = self.fs.size(self.url)
        except (FileNotFoundError, PermissionError) as error:
            raise _permanent(error) from None
        except Exception as error:
            raise bucket_fault(error) from None
        if start > size or (start == size and start):
            raise EndOfData()
        return ChunkBody(self.fs, self.url, start, size)


class ChunkBody:
    """An object read forward one ranged request at a time."""

    def __init__(self, fs: Any, url: str, start: int, size: int):
        self.fs, self.url, self.at, self.size = fs, url, start, size

    def read(self, size: int) -> bytes:
        if self.at >= self.size:
            return b""
        try:
            data = self.fs.cat_file(self.url, start=self.at, end=min(self.at + size, self.size))
        except (FileNotFoundError, PermissionError) as error:
            raise _permanent(error) from None
        except Exception as error:
            raise bucket_fault(error) from None
        self.at += len(data)
        return data

    def close(self) -> None:
        pass  # each chunk's request is closed when it is read


def _permanent(error: OSError) -> Exception:
    return error if isinstance(error, FileNotFoundError) else Refusal(f"access was refused ({error})")


def bucket_fault(error: Exception) -> Fault:
    """A transient fault of a bucket's request, in words; raises Refusal for what no try would fix."""
    if type(error).__name__ == "NoCredentialsError":  # botocore's: no try will find them
        raise Refusal("no credentials were found for it (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                      "or ~/.aws/credentials)")
    text = str(error).splitlines()[0] if str(error) else ""
    return Fault(f"{type(error).__name__}" + (f": {text}" if text else ""))

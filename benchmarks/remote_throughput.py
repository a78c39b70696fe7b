"""The training input from a set on a server and in a bucket, against the same set in a folder.

The set is served over loopback by an HTTP server that answers Range requests
(tests/shards/faulty_server.py, with no fault) and by a local S3 endpoint (moto's server), to which
``shards copy`` uploads it. Two figures per place, the places taking turns, best of --rounds:

- read MB/s: every shard read once through ``ShardSet.open_shard`` in this process (the transport
  alone: shards.storage's stream with its read-ahead thread, or the file);
- images/s: the trainer's loader (train.data, --workers workers, each reading one shard at a time),
  as benchmarks/loader_throughput.py measures it, and its ratio to the folder's; CPU ms/view, the
  CPU time of this process and the workers per view. Both servers run in a process of their own,
  so the CPU figure is the reader's alone; on a machine with few cores their work still competes
  with the loader's for images/s.

    python -m benchmarks.remote_throughput [--data SET] [--groups 1000] [--workers 2] [--epochs 2]

Without --data it renders a K = 1 set of 128-px images with the embedded generator first. Needs the
s3 extra and moto[server] (pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.loader_throughput import VIEWS, Measurement, measure, render_set, shard_epochs
from shards import ShardSet, open_set
from shards.copy import copy_set
from tests.shards.faulty_server import FaultyServer
from train.augment import AugmentConfig

BUCKET = "genviews-benchmark"
LOOPBACK = "127.0.0.1"  # both servers listen here only
READ_PIECE = 1 << 20


def read_megabytes_per_second(shard_set: ShardSet) -> float:
    start, total = time.perf_counter(), 0
    for index in range(len(shard_set.shard_rows)):
        with shard_set.open_shard(index) as stream:
            while piece := stream.read(READ_PIECE):
                total += len(piece)
    return total / 1e6 / (time.perf_counter() - start)


def serve(folder: Path, addresses: multiprocessing.Queue) -> None:
    """In a process of its own: ``folder``'s parent over HTTP and moto's S3 server, both on free
    loopback ports; puts (HTTP URL, S3 endpoint) on ``addresses``, then serves until killed."""
    from moto.server import ThreadedMotoServer

    s3 = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    s3.start()
    _, port = s3.get_host_and_port()
    with FaultyServer(folder.parent) as http:
        addresses.put((f"{http.url}/{folder.name}", f"http://{LOOPBACK}:{port}"))
        threading.Event().wait()


def start_servers(folder: Path) -> tuple[multiprocessing.Process, str]:
    """The serving process, and the set's HTTP URL; the AWS variables point at its S3 endpoint, in
    which the bucket BUCKET is made."""
    context = multiprocessing.get_context("spawn")
    addresses = context.Queue()
    process = context.Process(target=serve, args=(folder, addresses), daemon=True)
    process.start()
    url, endpoint = addresses.get(timeout=60)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "benchmark",
                       "AWS_SECRET_ACCESS_KEY": "benchmark", "AWS_DEFAULT_REGION": "us-east-1"})
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return process, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a shard set folder (default: render a K = 1 set)")
    parser.add_argument("--groups", type=int, default=1000, help="groups to render without --data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crop-size", type=int, default=AugmentConfig().crop_size)
    parser.add_argument("--views", type=int, default=VIEWS)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--rounds", type=int, default=2, help="measure every place this many times")
    args = parser.parse_args()
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1"  # the servers are on loopback: no proxy between

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.data or render_set(Path(scratch) / "set", args.groups)).resolve()
        servers, url = start_servers(folder)
        copy_set(str(folder), f"s3://{BUCKET}/set", workers=4)
        places = {"folder": str(folder), "http (loopback)": url, "s3 (moto, loopback)": f"s3://{BUCKET}/set"}
        sets = {name: open_set(location) for name, location in places.items()}
        config = AugmentConfig(crop_size=args.crop_size)
        read: dict[str, float] = {}
        loader: dict[str, Measurement] = {}
        for _ in range(args.rounds):
            for name, shard_set in sets.items():
                read[name] = max(read.get(name, 0.0), read_megabytes_per_second(shard_set))
                found = measure(shard_epochs(shard_set, config, args), args.epochs)
                best = loader.get(name, found)
                loader[name] = Measurement(max(found.images_per_second, best.images_per_second),
                                           min(found.cpu_ms_per_image, best.cpu_ms_per_image))
        servers.kill()

    shard_set = sets["folder"]
    megabytes = sum(row["bytes"] for row in shard_set.shard_rows) / 1e6
    print(f"{shard_set.groups} groups x {shard_set.views} views of {shard_set.image_size} px in "
          f"{len(shard_set.shard_rows)} shards ({megabytes:.1f} MB); {args.views} views per sample cropped to "
          f"{args.crop_size} px; batch {args.batch_size}; {args.workers} workers; {args.epochs} timed epochs, "
          f"best of {args.rounds} rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"{'place':<22}{'read MB/s':>11}{'images/s':>10}{'ratio':>8}{'CPU ms/view':>13}{'ratio':>8}")
    folder_figures = loader["folder"]
    for name in places:
        found = loader[name]
        print(f"{name:<22}{read[name]:>11.0f}{found.images_per_second:>10.0f}"
              f"{found.images_per_second / folder_figures.images_per_second:>7.2f}x{found.cpu_ms_per_image:>13.3f}"
              f"{found.cpu_ms_per_image / folder_figures.cpu_ms_per_image:>7.2f}x")


if __name__ == "__main__":
    main()

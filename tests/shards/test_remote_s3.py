"""Sets in an S3 bucket, on a local S3 endpoint (moto's server on loopback, started for this module and
stopped after it): ``shards copy`` there and back keeps every byte, and verify and the trainer read
``s3://`` as they read a folder."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from shards.cli import cli
from tests.cli import assert_clean_failure, cli_env, run_in_process, tree_digest
from tests.shards.helpers import write_synthetic_set
from train.main import main as train_main

pytest.importorskip("s3fs", reason="the s3 extra (pip install -e '.[s3]') is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is not installed")

BUCKET = "genviews-tests"
LOOPBACK = "127.0.0.1"  # the only host the tests reach: the S3 server they start
FAST = ["--epochs", "1", "--batch-size", "8", "--backbone", "convnet-small", "--workers", "0", "--log-every", "1",
        "--no-progress", "--warmup", "0"]


@pytest.fixture(scope="module")
def bucket():
    """s3://BUCKET on a moto server on loopback, the standard AWS variables pointing at it."""
    server = moto_server.ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as environment:
        for name, value in {"AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            environment.setenv(name, value)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}"
    server.stop()


@pytest.fixture(scope="module")
def uploaded(bucket: str, tmp_path_factory) -> tuple[Path, str]:
    """A 16-group set in a folder, and its copy in the bucket made by ``shards copy``."""
    folder = tmp_path_factory.mktemp("local") / "set"
    write_synthetic_set(folder, groups=16, groups_per_shard=4)
    result = shards("copy", folder, f"{bucket}/set")
    assert result.returncode == 0, result.stderr
    assert "4 shards (4 copied" in result.stdout
    return folder, f"{bucket}/set"


def shards(*args: object):
    return run_in_process(cli, "python -m shards", *args, *(["--no-progress"] if args[0] != "info" else []))


def test_a_copy_to_the_bucket_and_back_has_every_byte_of_the_set(uploaded: tuple[Path, str], tmp_path: Path):
    folder, url = uploaded

    result = shards("copy", url, tmp_path / "back", "--workers", "2")
    again = shards("copy", folder, url)

    assert result.returncode == 0, result.stderr
    assert tree_digest(tmp_path / "back") == tree_digest(folder)  # shards, records, card and manifest
    assert "(0 copied, 0 bytes; 4 already there)" in again.stdout  # the records in the bucket say so


def test_verify_reads_a_set_in_the_bucket(uploaded: tuple[Path, str]):
    _, url = uploaded

    result = shards("verify", url, "--workers", "1")

    assert result.returncode == 0, result.stderr
    assert f"{url} is intact: 16 groups in 4 shards." in result.stdout


def test_training_from_the_bucket_gives_the_weights_of_training_from_the_folder(uploaded: tuple[Path, str],
                                                                                tmp_path: Path):
    folder, url = uploaded
    for data, run in ((folder, "local"), (url, "bucket")):
        result = run_in_process(train_main, "train/main.py", "--data", data, "--out", tmp_path / run, *FAST)
        assert result.returncode == 0, result.stderr

    expected, got = (torch.load(tmp_path / run / "last.pt", weights_only=True)["model"] for run in ("local", "bucket"))
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_a_shard_that_cannot_be_spooled_for_its_upload_is_one_sentence(bucket: str, tmp_path: Path):
    """A bucket's shards are spooled to the temporary folder before their upload: a refused write
    there (a full disk; here the file-size limit, which refuses it the same way) is one sentence."""
    folder = tmp_path / "set"
    write_synthetic_set(folder, groups=8, groups_per_shard=4)

    result = subprocess.run([sys.executable, "-m", "shards", "copy", str(folder), f"{bucket}/spool", "--no-progress"],
                            env={**cli_env(), "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))

    assert_clean_failure(result, "File too large while writing", str(tmp_path / "genviews-copy-"))
    assert not list(tmp_path.glob("genviews-copy-*"))


def test_a_bucket_that_does_not_exist_is_one_sentence_at_the_first_try(bucket: str, tmp_path: Path):
    folder = tmp_path / "set"
    write_synthetic_set(folder, groups=4, groups_per_shard=4)

    result = shards("copy", folder, "s3://no-such-bucket-here/set")

    assert_clean_failure(result, "s3://no-such-bucket-here/set/shard-000000.tar could not be written: ",
                         "bucket does not exist")
    assert "tries" not in result.stderr

"""A set on an HTTP server that misbehaves on purpose (tests/shards/faulty_server.py): each fault of a
real network ends, within a bound, in one sentence naming the URL; a fault that heals changes nothing."""

from __future__ import annotations

import importlib.util
import socket
import ssl
from pathlib import Path

import pytest

from evaluate.cli import cli as evaluate_cli
from shards.cli import cli
from shards.reader import open_set
from shards.schema import ShardSetError
from tests.cli import assert_clean_failure, run_in_process
from tests.evaluate.helpers import write_checkpoint
from tests.shards.faulty_server import FaultyServer

FAULTY = "shard-000001.tar"
UNTRUSTED_SERVER = Path(__file__).parent / "data" / "untrusted-server.pem"  # self-signed key and certificate
pytestmark = pytest.mark.usefixtures("quick_network", "bounded_case")


def shards_command(*args: object):
    return run_in_process(cli, "python -m shards", *args)


def verify(location: str):
    return shards_command("verify", location, "--workers", "1", "--no-progress")


def test_a_set_on_a_server_verifies_as_its_folder_does(server: FaultyServer):
    result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("is intact: 16 groups in 4 shards.")


@pytest.mark.parametrize("fault, message", [
    ("stall", "{url} could not be read: no data for 1 s (2 tries)."),
    ("drop", "{url} could not be read: the connection closed "),
    ("endless", "{url} is longer than the {size} bytes its manifest row gives; it was refused at byte {after}."),
    ("redirect-out", "{url} could not be read: the server redirects it to file:///etc/passwd, which is not an "
                     "http(s) URL, so it was not followed."),
    ("short", "{url} ends at byte {cut}, before the {size} bytes its manifest row gives (truncated or replaced)."),
    ("drip", "{url} could not be read: the connection closed "),  # 1 KiB a try: bounded all the same
])
def test_each_fault_ends_in_one_sentence_that_names_the_url(server: FaultyServer, served_folder: Path,
                                                           fault: str, message: str):
    server.faults[FAULTY] = fault
    size = (served_folder / "set" / FAULTY).stat().st_size

    result = verify(f"{server.url}/set")

    assert result.returncode != 0 and "Traceback" not in result.stderr
    said = result.stdout + result.stderr  # verify names a shard it could not read, or stops at it
    assert message.format(url=f"{server.url}/set/{FAULTY}", size=size, after=size + 1, cut=size - 1024) in said
    assert "curl" not in said


def test_a_shard_the_server_does_not_have_is_reported_missing(server: FaultyServer):
    server.faults[FAULTY] = "missing"

    result = verify(f"{server.url}/set")

    assert_clean_failure(result, f"1 of 4 shards of {server.url}/set are damaged or missing.")
    assert f"shard {FAULTY}: is missing." in result.stdout


@pytest.mark.parametrize("fault", ["stall-once", "drop-once"])
def test_a_fault_that_heals_resumes_at_the_byte_reached(server: FaultyServer, served_folder: Path, fault: str):
    server.faults[FAULTY] = fault

    result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    middle = (served_folder / "set" / FAULTY).stat().st_size // 2
    assert [start for name, start in server.requests if name == FAULTY] == [0, middle]  # not from byte 0 again


def test_a_server_that_ignores_range_is_read_again_from_its_start_and_the_bytes_already_read_dropped(
        server: FaultyServer, served_folder: Path):
    server.faults[FAULTY] = "drop-once"
    server.ignores_range = True

    result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    middle = (served_folder / "set" / FAULTY).stat().st_size // 2
    assert [start for name, start in server.requests if name == FAULTY] == [0, middle]  # asked, answered from 0


def test_a_resumed_read_answered_with_other_bytes_than_asked_is_refused_at_once(server: FaultyServer,
                                                                                 served_folder: Path):
    server.faults[FAULTY] = "bad-range"
    middle = (served_folder / "set" / FAULTY).stat().st_size // 2

    result = verify(f"{server.url}/set")

    said = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (f"{server.url}/set/{FAULTY} could not be read: the server answered a request for bytes from {middle} on "
            "with bytes from 0 on.") in said
    assert [start for name, start in server.requests if name == FAULTY] == [0, middle]  # no try after the refusal


def test_a_redirect_to_another_http_url_is_followed(server: FaultyServer):
    server.faults[FAULTY] = "redirect-http"

    result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    assert server.times_asked(FAULTY) == 2  # the URL asked, then the one it was redirected to


def test_a_server_error_that_heals_is_tried_again(server: FaultyServer):
    server.faults[FAULTY] = "error-once"

    assert verify(f"{server.url}/set").returncode == 0
    assert server.times_asked(FAULTY) == 2


def test_evaluate_reads_the_server_as_the_folder_and_stops_at_a_shard_that_stays_unreadable(
        tmp_path: Path, served_folder: Path, server: FaultyServer):
    checkpoint = write_checkpoint(tmp_path / "run" / "last.pt", weights_backbone="convnet-small")
    url = f"{server.url}/set"

    def knn(location: str | Path, out: str):
        return run_in_process(evaluate_cli, "python -m evaluate", "knn", "--checkpoint", checkpoint, "--train",
                              location, "--val", location, "--k", 3, "--no-progress", "--out", tmp_path / out)

    local = knn(served_folder / "set", "local")
    server.faults[FAULTY] = "drop-once"
    healed = knn(url, "healed")
    server.faults[FAULTY] = "stall"
    stopped = knn(url, "stopped")

    assert local.returncode == 0 and healed.returncode == 0, healed.stderr
    assert healed.stdout.split(" on ")[0] == local.stdout.split(" on ")[0]  # the same accuracy
    assert_clean_failure(stopped, f"{url}/{FAULTY} could not be read: no data for 1 s (2 tries).")
    assert stopped.stderr.count("\n") == 1


def test_a_manifest_without_end_is_refused_at_the_member_limit(server: FaultyServer, monkeypatch):
    monkeypatch.setenv("GENVIEWS_MAX_MEMBER_BYTES", "100000")
    server.faults["manifest.json"] = "huge"

    result = shards_command("info", f"{server.url}/set")

    assert_clean_failure(result, f"{server.url}/set/manifest.json holds more than the limit of 100000 bytes")


def test_a_server_that_is_not_there_is_named_without_a_transports_arguments():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/set"

    result = shards_command("info", url)

    assert_clean_failure(result, f"{url}/manifest.json could not be reached: the connection was refused (2 tries).")
    assert "curl" not in result.stderr


def test_a_set_that_is_not_on_the_server_says_so(server: FaultyServer):
    result = shards_command("info", f"{server.url}/elsewhere")

    assert_clean_failure(result, f"No finished shard set at {server.url}/elsewhere: it has no manifest.json "
                                 "(the server answered 404 Not Found).")


@pytest.mark.parametrize("variable", ["GENVIEWS_NET_TIMEOUT", "GENVIEWS_NET_TRIES"])
def test_a_network_setting_that_is_not_a_number_is_named(server: FaultyServer, monkeypatch, variable: str):
    monkeypatch.setenv(variable, "soon")

    result = shards_command("info", f"{server.url}/set")

    assert_clean_failure(result, f"{variable} must be a positive whole number, not 'soon'.")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_a_scheme_without_its_extra_names_the_extra_to_install():
    with pytest.raises(ShardSetError, match=r"gs:// sets need the gcsfs package: pip install 'genviews\[gcs\]'"):
        open_set("gs://bucket/set")


@pytest.mark.parametrize("location", ["file:///data/set", "ftp://host/set"])
def test_schemes_without_a_transport_are_refused(location: str):
    with pytest.raises(ShardSetError, match="a shard set is read from a folder or an http"):
        open_set(location)


def test_a_server_whose_certificate_is_not_trusted_is_refused_without_trying_again(served_folder: Path):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(UNTRUSTED_SERVER)
    server = FaultyServer(served_folder)
    server.httpd.socket = tls.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        url = server.url.replace("http://", "https://") + "/set"
        result = verify(url)

    assert_clean_failure(result, f"{url}/manifest.json could not be read: its server's certificate is not trusted")
    assert "tries" not in result.stderr

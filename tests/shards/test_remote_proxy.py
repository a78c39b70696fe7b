"""A set on a server reached through a forward proxy (tests/shards/forward_proxy.py), which the
environment names as pip and urllib read it: HTTP_PROXY, HTTPS_PROXY, NO_PROXY."""

from __future__ import annotations

import base64
import socket
import ssl
from pathlib import Path

import pytest

from tests.shards.faulty_server import FaultyServer
from tests.shards.forward_proxy import ForwardProxy
from tests.shards.test_remote import UNTRUSTED_SERVER, shards_command, verify
from tests.cli import assert_clean_failure

pytestmark = pytest.mark.usefixtures("quick_network", "bounded_case")
SHARDS = [f"shard-{index:06d}.tar" for index in range(4)]


def test_a_set_behind_a_proxy_verifies_through_it(server: FaultyServer, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("is intact: 16 groups in 4 shards.")
    asked = [target for method, target, _ in proxy.requests if method == "GET"]
    assert f"{server.url}/set/manifest.json" in asked
    assert all(f"{server.url}/set/{shard}" in asked for shard in SHARDS)
    assert len(asked) == len(proxy.requests) == len(server.requests)  # nothing reached the server directly


def test_no_proxy_names_the_hosts_reached_directly(server: FaultyServer, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")
        result = verify(f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    assert proxy.requests == [] and server.times_asked("manifest.json") >= 1


def test_credentials_in_the_proxy_url_are_sent_as_basic_authentication(server: FaultyServer, monkeypatch):
    with ForwardProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url.replace("http://", "http://lab%20user:s3cret@"))
        result = shards_command("info", f"{server.url}/set")

    assert result.returncode == 0, result.stderr
    expected = "Basic " + base64.b64encode(b"lab user:s3cret").decode()
    assert proxy.requests and all(credentials == expected for _, _, credentials in proxy.requests)


def test_an_https_url_goes_through_the_proxys_tunnel_to_the_server(served_folder: Path, monkeypatch):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(UNTRUSTED_SERVER)
    server = FaultyServer(served_folder)
    server.httpd.socket = tls.wrap_socket(server.httpd.socket, server_side=True)
    with server, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        host_port = server.url.removeprefix("http://")
        url = f"https://{host_port}/set"
        result = verify(url)

    # The TLS handshake reached the server itself through the tunnel: its certificate is the one judged.
    assert_clean_failure(result, f"{url}/manifest.json could not be read: its server's certificate is not trusted")
    assert proxy.requests == [("CONNECT", host_port, None)]


def test_a_proxy_that_refuses_the_tunnel_is_one_sentence_without_trying_again(monkeypatch):
    with ForwardProxy(refuses=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        url = "https://127.0.0.1:9/set"  # never reached: the proxy refuses first
        result = shards_command("info", url)

    assert_clean_failure(result, f"{url}/manifest.json could not be read: the proxy answered 407 Proxy "
                                 "Authentication Required to the tunnel.")
    assert len(proxy.requests) == 1


def test_a_plain_proxy_that_wants_credentials_says_where_they_go(monkeypatch):
    with ForwardProxy(refuses=True) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        url = "http://127.0.0.1:9/set"  # never reached: the proxy refuses first
        result = shards_command("info", url)

    shown = proxy.url.removeprefix("http://")
    assert_clean_failure(result, f"{url}/manifest.json could not be read: the proxy {shown} answered 407 Proxy "
                                 "Authentication Required; its credentials go in HTTP_PROXY as "
                                 "http://USER:PASSWORD@HOST:PORT.")
    assert len(proxy.requests) == 1


def test_a_proxy_that_is_not_there_is_named(server: FaultyServer, monkeypatch):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        proxy = f"127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", proxy)

    result = shards_command("info", f"{server.url}/set")

    assert_clean_failure(result, f"{server.url}/set/manifest.json could not be reached: the connection was "
                                 f"refused via the proxy {proxy} (2 tries).")
    assert server.requests == []


@pytest.mark.parametrize("address, shown", [
    ("socks5://lab:s3cret@127.0.0.1:1080", "socks5://127.0.0.1:1080"),  # the password is never printed
    ("http://127.0.0.1:proxy", "http://127.0.0.1:proxy"),
])
def test_a_proxy_that_is_not_an_http_host_and_port_is_refused_in_one_sentence(server: FaultyServer, monkeypatch,
                                                                            address: str, shown: str):
    monkeypatch.setenv("HTTP_PROXY", address)

    result = shards_command("info", f"{server.url}/set")

    assert_clean_failure(result, f"HTTP_PROXY names {shown}, which is not an http://HOST:PORT proxy, the kind "
                                 "supported.")
    assert "s3cret" not in result.stderr and server.requests == []

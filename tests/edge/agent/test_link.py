"""The MQTT link: broker URLs, jittered capped backoff, TLS with a CA file."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.agent.agent import Agent
from edge.agent.link import Backoff, BrokerAddress, parse_broker_url
from tests.edge.agent.brokers import AckingHub, Mosquitto, free_port, wait_for
from tests.edge.agent.helpers import Heard, token


def test_broker_urls() -> None:
    assert parse_broker_url("mqtt://h:1884") == BrokerAddress("h", 1884, False)
    assert parse_broker_url("mqtts://h") == BrokerAddress("h", 8883, True)
    with pytest.raises(ValueError, match="mqtt://host:port"):
        parse_broker_url("http://h:80")


def test_backoff_doubles_to_a_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[3:]}) > 1  # jittered, not lock-step
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def _tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl)."""
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem"))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=storewave-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def test_node_speaks_tls_when_configured(
    broker: Mosquitto, hub: AckingHub, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    ca, cert, key = _tls_files(tmp_path)
    tls_port = free_port()
    conf = broker.dir / "mosquitto.conf"
    conf.write_text(
        conf.read_text()
        + f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    )
    broker.stop()
    broker.start()
    agent = make_agent(broker_url=f"mqtts://127.0.0.1:{tls_port}", tls_ca_file=ca)
    agent.start()
    agent.post_detection(Heard(token(1)))
    wait_for(lambda: len(hub.of_type("detection")) == 1, what="a detection over TLS")
    wait_for(agent.drained, what="the ack over TLS")

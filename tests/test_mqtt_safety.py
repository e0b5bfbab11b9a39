"""MQTT faults a plant meets: a broker that accepts TCP but never answers (no client, thread or
socket may pile up), TLS against a real mosquitto with a certificate made here, and config the
broker would refuse later (wildcards in topic levels, QoS 0, an unset password variable)."""

import os
import socket
import subprocess
import threading
import time

import pytest
from conftest import free_port, make_station, run_cli, wait_port
from test_outputs_network import MOSQUITTO, Subscriber, _mqtt_yaml

from edge.config import Mqtt, MqttTls
from edge.outputs.mqtt import MqttTransport
from edge.schema import load

paho = pytest.importorskip("paho.mqtt.client")


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_a_broker_that_never_answers_leaks_no_client_thread_or_socket():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)  # accepts the TCP connection, never sends CONNACK
    cfg = Mqtt(enabled=True, port=server.getsockname()[1], timeout_s=0.2)
    t = MqttTransport(cfg, "s", "c")
    with pytest.raises(TimeoutError):
        t.connect()  # the first: paho's modules and threads warm up
    threads, fds = threading.active_count(), _open_fds()
    for _ in range(5):
        with pytest.raises(TimeoutError):
            t.connect()
    time.sleep(0.3)
    assert threading.active_count() <= threads and _open_fds() <= fds + 1, (threading.enumerate(), _open_fds(), fds)
    t.close()
    server.close()


@pytest.mark.parametrize("yaml, key, expect", [
    ("station: line+1\n", "station", "without '+', '#'"),
    ("outputs:\n  mqtt:\n    enabled: true\n    topic_prefix: plant/#\n", "outputs.mqtt.topic_prefix", "'#'"),
    ("outputs:\n  mqtt:\n    enabled: true\n    qos: 0\n", "outputs.mqtt.qos", "QoS 0 can lose verdicts"),
    ("outputs:\n  mqtt:\n    enabled: true\n    username: u\n    password_env: EDGE_TEST_UNSET_PW\n",
     "outputs.mqtt.password_env", "EDGE_TEST_UNSET_PW to be set"),
    ("outputs:\n  mqtt:\n    enabled: true\n    tls: {ca_file: /nonexistent/ca.pem}\n", "outputs.mqtt.tls.ca_file",
     "not found: /nonexistent/ca.pem"),
])
def test_mqtt_settings_the_broker_would_refuse_are_refused_at_start(tmp_path, yaml, key, expect):
    cfg = make_station(tmp_path, count=1, extra_yaml=yaml.replace("station: line+1\n", "outputs:\n  mqtt:\n    enabled: true\n"))
    if yaml.startswith("station:"):
        cfg.write_text(cfg.read_text().replace("station: t", "station: line+1"))
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"{key}: expected" in res.stderr and expect in res.stderr, res.stderr


def _certs(d):
    """A CA and a server certificate for 127.0.0.1 (openssl, a few hundred ms)."""
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=edge-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "2", "-extfile", "ext.cnf")
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "2",
        "-subj", "/CN=someone-else")


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")
def test_verdicts_over_tls_to_a_real_broker_and_a_wrong_ca_is_never_trusted(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    _certs(d)
    tls_port, plain_port = free_port(), free_port()
    user = "user root\n" if os.geteuid() == 0 else ""
    (d / "mosquitto.conf").write_text(
        f"per_listener_settings false\nallow_anonymous true\n{user}"
        f"listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        f"listener {plain_port} 127.0.0.1\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(d / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(tls_port)
        wait_port(plain_port)
        sub = Subscriber(plain_port, "edge/#")
        tls = f"    tls: {{ca_file: {d}/ca.pem}}\n    port: {tls_port}\n"
        cfg = make_station(tmp_path, count=4, extra_yaml=_mqtt_yaml(tls_port, tmp_path / "spool").replace(
            f"    port: {tls_port}\n", tls))
        res = run_cli(["--config", str(cfg)])
        assert res.returncode == 0, res.stderr
        sub.wait_for(4, timeout=15)
        assert sorted({m["frame_id"] for m in sub.messages}) == [0, 1, 2, 3]
        # the same broker, a CA that did not sign it: nothing is sent, the failure is named
        other = tmp_path / "other"
        other.mkdir()
        wrong = make_station(other, count=2, extra_yaml=_mqtt_yaml(tls_port, other / "spool").replace(
            f"    port: {tls_port}\n", tls.replace(f"{d}/ca.pem", f"{d}/other.pem")) + "    drain_s: 1\n")
        before = len(sub.messages)
        res = run_cli(["--config", str(wrong)])
        assert "CERTIFICATE_VERIFY_FAILED" in res.stderr or "certificate verify failed" in res.stderr, res.stderr
        time.sleep(0.5)
        assert len(sub.messages) == before
        sub.close()
    finally:
        broker.terminate()
        broker.wait(10)


def test_tls_section_is_typed():
    m = load(Mqtt, {"enabled": True, "tls": {"ca_file": None}}, "s.yaml", "outputs.mqtt")
    assert m.tls == MqttTls()

"""MQTT (paho-mqtt): one verdict topic per station/camera, QoS 1, a retained status with last will.

Topics: <prefix>/<station>/<camera>/verdict (each record as JSON) and .../status (retained
{"state": "online"|"offline"}; the broker publishes "offline" as last will if edge-run dies).
QoS 1 is at-least-once: after a reconnect a verdict may arrive twice; consumers dedupe by
(camera, frame_id, time).
"""

from __future__ import annotations

import json
import os
import time


class MqttTransport:
    def __init__(self, cfg, station: str, camera: str):
        self.cfg = cfg
        self.name = "mqtt"
        base = f"{cfg.topic_prefix}/{station}/{camera}"
        self.topic, self.status_topic = f"{base}/verdict", f"{base}/status"
        self.client_id = cfg.client_id or f"edge-{station}-{camera}"
        self._client = None

    def connect(self):
        import paho.mqtt.client as mqtt

        self.close(clean=False)  # never two clients with one client id
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(3600, 3600)  # the delivery thread reconnects, not paho's loop behind its back
        if self.cfg.username:
            c.username_pw_set(self.cfg.username, os.environ.get(self.cfg.password_env or "", None))
        if self.cfg.tls:
            c.tls_set(ca_certs=self.cfg.tls.ca_file, certfile=self.cfg.tls.cert_file, keyfile=self.cfg.tls.key_file)
        c.will_set(self.status_topic, json.dumps({"state": "offline", "reason": "connection lost"}), qos=1, retain=True)
        self._client = c
        try:
            c.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)  # raises OSError when down
            c.loop_start()
            deadline = time.monotonic() + self.cfg.timeout_s
            while not c.is_connected():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no CONNACK from {self.cfg.host}:{self.cfg.port}")
                time.sleep(0.01)
            self._publish(self.status_topic, {"state": "online"}, retain=True)
        except BaseException:  # a failed attempt leaves no client, thread or socket behind
            self.close(clean=False)
            raise

    def _publish(self, topic: str, payload: dict, retain: bool = False):
        c = self._client
        if c is None or not c.is_connected():
            raise ConnectionError("not connected")
        info = c.publish(topic, json.dumps(payload, separators=(",", ":")), qos=self.cfg.qos, retain=retain)
        if info.rc != 0:
            raise ConnectionError(f"publish failed (paho rc {info.rc})")
        if self.cfg.qos:
            info.wait_for_publish(self.cfg.timeout_s)
            if not info.is_published():
                raise TimeoutError(f"no PUBACK within {self.cfg.timeout_s} s")

    def send(self, record: dict, age_s: float = 0.0):
        self._publish(self.topic, record)

    def idle(self):
        if self._client is None or not self._client.is_connected():
            raise ConnectionError("connection lost")

    def close(self, clean: bool = True):
        c, self._client = self._client, None
        if c is None:
            return
        try:
            if clean and c.is_connected():
                c.publish(self.status_topic, json.dumps({"state": "offline", "reason": "stopped"}),
                          qos=1, retain=True).wait_for_publish(1.0)
            c.disconnect()
        finally:
            c.loop_stop()
            sock = c.socket()
            if sock is not None:  # disconnect() without a CONNACK leaves the socket open
                sock.close()

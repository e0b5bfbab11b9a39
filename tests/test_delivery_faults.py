"""The delivery thread of a network output outlives failures of its own spool: the real SQLite
spool on a real full disk (a small tmpfs), and I/O errors injected into it. The peer here is a
recording transport (what is tested is the thread, not MQTT or Modbus: those run against a real
broker and PLC server in test_outputs_network.py)."""

import os
import sqlite3
import threading

from conftest import wait_until

from edge.outputs.delivery import QueuedOutput
from edge.telemetry import OutputStats


class Recorder:
    name = "recorder"

    def __init__(self):
        self.got, self.lock = [], threading.Lock()

    def connect(self):
        pass

    def send(self, record, age_s):
        with self.lock:
            self.got.append(record["frame_id"])

    def idle(self):
        pass

    def close(self):
        pass


def test_spool_io_errors_are_counted_and_delivery_goes_on(tmp_path, caplog):
    peer, stats = Recorder(), OutputStats("recorder")
    out = QueuedOutput(peer, tmp_path / "spool.sqlite", 1000, stats, idle_s=0.05, backoff=(0.02, 0.1))
    real_after, failures = out.spool.after, [3]

    def failing_after(seq, limit=256):
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real_after(seq, limit)

    out.spool.after = failing_after
    for i in range(50):
        out.emit({"frame_id": i})
    assert wait_until(lambda: len(peer.got) == 50), peer.got
    assert out._thread.is_alive() and stats.errors == 3 and "disk I/O error" in stats.last_error
    out.emit({"frame_id": 50})
    assert wait_until(lambda: len(peer.got) == 51)
    out.close()
    assert peer.got == list(range(51))
    assert caplog.text.count("delivery failed (OperationalError: disk I/O error)") == 1  # once a minute


def test_spool_on_a_full_disk_keeps_records_in_memory_and_delivers_them_after(tmp_path, small_disk):
    disk = small_disk("8m")  # room, once freed, for the backlog: every commit adds a 4 kB WAL page
    peer, stats = Recorder(), OutputStats("recorder")
    out = QueuedOutput(peer, disk / "spool.sqlite", 100_000, stats, idle_s=0.05, backoff=(0.02, 0.1))
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # the rest of the disk
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    for i in range(400):
        out.emit({"frame_id": i, "pad": "x" * 100})
    assert out._thread.is_alive()
    assert stats.depth_memory > 0, "the spool should have refused records on a full disk"
    filler.unlink()
    out.emit({"frame_id": 400})
    assert wait_until(lambda: len(peer.got) >= 401, 20), (len(peer.got), stats.errors, stats.last_error)
    out.close()
    assert peer.got == list(range(401)) and stats.depth_memory == 0


def test_a_corrupt_spool_is_moved_aside_and_a_new_one_started(tmp_path, caplog):
    path = tmp_path / "spool.sqlite"
    path.write_bytes(b"this is not an SQLite database, it was cut short by a power cut" * 50)
    peer, stats = Recorder(), OutputStats("recorder")
    out = QueuedOutput(peer, path, 1000, stats, idle_s=0.05, backoff=(0.02, 0.1))
    out.emit({"frame_id": 1})
    assert wait_until(lambda: peer.got == [1])
    out.close()
    aside = list(tmp_path.glob("spool.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not an SQLite")
    assert "was damaged; moved aside to spool.sqlite.corrupt-" in caplog.text

"""systemd's notify protocol (sd_notify) without libsystemd: one datagram per state change.

READY=1 after warm-up, WATCHDOG=1 while healthy, STOPPING=1 on shutdown, STATUS=... for
`systemctl status`. Does nothing when NOTIFY_SOCKET is unset (not run by systemd).
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall("\n".join(states).encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between required WATCHDOG=1 pings, or None when systemd set no watchdog for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6
    except ValueError:
        return None

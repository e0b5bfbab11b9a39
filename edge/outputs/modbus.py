"""Modbus TCP to a PLC (pymodbus client): a verdict coil and holding registers.

Holding registers from `register` (default 0), 16-bit, counters as two words (high, low):
  +0 result code: 1 OK, 2 NG, 3 DROPPED (frame not inspected)
  +1 sequence: frame_id modulo 65536 (the PLC latches a new result when it changes)
  +2,+3 OK count   +4,+5 NG count   +6,+7 DROPPED count
  +8 heartbeat: increments every heartbeat_s while edge-run is connected
  +9 score x 1000, saturated at 65535
  +10 age of the verdict when written, in 0.1 s, saturated at 65535
Coil `coil`: 1 = reject. A DROPPED frame sets it too: a part that was not inspected is not passed.
A verdict older than `max_age_s` when it is finally written (the PLC was down) is history, not
the part in front of the station: result code 4 (late), counters and sequence as usual, and the
coil is not touched, so a replayed backlog never fires the reject mechanism.
Counters are read back from the PLC on connect, so they continue across restarts of edge-run.
"""

from __future__ import annotations

import logging
import math

from ..verdict import Verdict

CODES = {Verdict.OK: 1, Verdict.NG: 2, Verdict.DROPPED: 3}
LATE = 4
REGISTERS = 11


class ModbusTransport:
    def __init__(self, cfg):
        self.cfg = cfg
        self.name = "modbus"
        self._client = None
        self.counts = {v: 0 for v in Verdict}
        self.heartbeat = 0
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # failures are reported through telemetry

    def _check(self, rr, what: str):
        if rr.isError():
            raise ConnectionError(f"PLC refused {what}: {rr}")
        return rr

    def connect(self):
        from pymodbus.client import ModbusTcpClient

        c = ModbusTcpClient(self.cfg.host, port=self.cfg.port, timeout=self.cfg.timeout_s, retries=0)
        if not c.connect():
            c.close()
            raise ConnectionError(f"cannot connect to {self.cfg.host}:{self.cfg.port}")
        self._client = c
        regs = self._check(c.read_holding_registers(self.cfg.register, count=REGISTERS, device_id=self.cfg.unit),
                           "reading the result registers").registers
        for i, key in enumerate(Verdict):
            self.counts[key] = (regs[2 + 2 * i] << 16) | regs[3 + 2 * i]
        self.heartbeat = regs[8]

    def send(self, record: dict, age_s: float = 0.0):
        from pymodbus.exceptions import ModbusException

        verdict = Verdict(record.get("verdict", Verdict.DROPPED))  # records come back from the spool as text
        counts = dict(self.counts)
        counts[verdict] = (counts.get(verdict, 0) + 1) & 0xFFFFFFFF
        s = record.get("score")
        if isinstance(s, (int, float)) and math.isfinite(s):
            score = min(65535, max(0, int(round(s * 1000))))
        else:  # no score (DROPPED) or none that can be read (non-finite NG): 0, or saturated for NG
            score = 65535 if verdict is Verdict.NG else 0
        late = age_s > self.cfg.max_age_s
        words = [LATE if late else CODES.get(verdict, 3), int(record.get("frame_id", 0)) & 0xFFFF]
        for key in Verdict:
            words += [counts[key] >> 16, counts[key] & 0xFFFF]
        words += [self.heartbeat, score, min(65535, int(age_s * 10))]
        try:
            self._check(self._client.write_registers(self.cfg.register, words, device_id=self.cfg.unit), "the result registers")
            if not late:
                self._check(self._client.write_coil(self.cfg.coil, verdict is not Verdict.OK, device_id=self.cfg.unit),
                            "the verdict coil")
        except ModbusException as e:
            raise ConnectionError(str(e)) from None
        self.counts = counts

    def idle(self):
        from pymodbus.exceptions import ModbusException

        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        try:
            self._check(self._client.write_register(self.cfg.register + 8, self.heartbeat, device_id=self.cfg.unit),
                        "the heartbeat register")
        except ModbusException as e:
            raise ConnectionError(str(e)) from None

    def close(self):
        c, self._client = self._client, None
        if c is not None:
            c.close()

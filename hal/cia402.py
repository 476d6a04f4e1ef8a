"""CiA 402 servo drives over CANopen, cyclic synchronous torque (0x6060 = 10): set-up.

:class:`Cia402Driver` brings a drive up with the ``canopen`` library on the caller's python-can
bus: NMT, SDO configuration, the PDO mapping (written with canopen's PDO API from the object
dictionary of the EDS), the checks of the drive's own settings against the model table, the
controlword state machine to Operation Enabled, the heartbeat consumer of the host (the drive's
loss-of-host protection) armed.  The tick then talks to the drive only through raw PDO bytes and
SYNC (:class:`hal._cia402.Cia402Codec`, built by :func:`cia402_codec`).

Nothing is stored in the drive's non-volatile memory (0x1010 is never written): every setting
below is volatile and lost at the drive's next reset; each write is logged
(``hal.cia402``, INFO, "volatile: ...").  Protocol facts and their sources:
docs/drivers_cia402_facts.md.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional

import can

from .driver import DriverState, MotorDriver
from .errors import ConfigError, DriverFault, DriverTimeout, HalError

__all__ = ["Cia402Driver", "CIA402_MODELS", "DEFAULT_MODEL", "DEFAULT_EDS", "cia402_codec",
           "NODE_ID_MIN", "NODE_ID_MAX", "CSP_TORQUE_MODE", "PDO_LAYOUT"]

log = logging.getLogger(__name__)

#: The EDS of the simulated drive, shipped as package data (hal/data/ankle_drive.eds).
DEFAULT_EDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ankle_drive.eds")
NODE_ID_MIN, NODE_ID_MAX = 1, 127         # CANopen node ids (CiA 301 7.3.2)
CSP_TORQUE_MODE = 10                      # 0x6060: cyclic synchronous torque (CiA 402 6.3.1)
#: 0x6007 abort connection option code: 1 = fault signal (CiA 402 6.4.1): on a heartbeat
#: consumer timeout the drive goes to Fault (torque off, latched, EMCY) and the host sees it.
FAULT_SIGNAL = 1

_TWO_PI = 2.0 * math.pi


def _model(name: str, *, rated_torque_mNm: int, gear_ratio: int, max_torque_permille: int,
           counts_per_rev: int, velocity_unit_rad_s: float, velocity_limit_rad_s: float,
           consumer_ms: int, host_heartbeat_ms: int, drive_heartbeat_ms: int,
           temperature_index: Optional[int], temperature_C_per_unit: float, note: str):
    return MappingProxyType({
        "name": name, "rated_torque_mNm": rated_torque_mNm, "gear_ratio": gear_ratio,
        "max_torque_permille": max_torque_permille,
        # the most torque a command carries, drive output shaft [N*m]
        "torque_limit_Nm": rated_torque_mNm * 1e-3 * gear_ratio * max_torque_permille * 1e-3,
        "counts_per_rev": counts_per_rev, "velocity_unit_rad_s": velocity_unit_rad_s,
        "velocity_limit_rad_s": velocity_limit_rad_s, "consumer_ms": consumer_ms,
        "host_heartbeat_ms": host_heartbeat_ms, "drive_heartbeat_ms": drive_heartbeat_ms,
        "temperature_index": temperature_index, "temperature_C_per_unit": temperature_C_per_unit,
        "note": note})


#: Models (name -> ratings).  rated_torque_mNm: 0x6076 (motor).  gear_ratio: motor revolutions per
#: output revolution (0x6091).  max_torque_permille: 0x6072.  counts_per_rev: encoder increments
#: per motor revolution (0x608F).  velocity_unit_rad_s: one unit of 0x606C in motor rad/s.
#: consumer_ms: the drive's heartbeat consumer time for the host (its loss-of-host time, 0x1016);
#: host_heartbeat_ms: how often the tick sends the host's heartbeat; drive_heartbeat_ms: 0x1017.
CIA402_MODELS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "sim-cia402": _model(
        "simulated CiA 402 drive (hal/data/ankle_drive.eds)", rated_torque_mNm=6000, gear_ratio=1,
        max_torque_permille=3000, counts_per_rev=16384, velocity_unit_rad_s=_TWO_PI / 16384,
        velocity_limit_rad_s=50.0, consumer_ms=30, host_heartbeat_ms=10, drive_heartbeat_ms=100,
        temperature_index=0x2000, temperature_C_per_unit=0.1,
        note="the simulated drive: 0x606C in increments/s, vendor object 0x2000 power stage 0.1 degC"),
    "EPOS4-EC45flat-GP42": _model(
        "Maxon EPOS4 + EC 45 flat 70 W + GP 42 C 26:1 (example bench row, not confirmed on a drive)",
        rated_torque_mNm=128, gear_ratio=26, max_torque_permille=3000, counts_per_rev=4096,
        velocity_unit_rad_s=_TWO_PI / 60.0, velocity_limit_rad_s=25.0, consumer_ms=30,
        host_heartbeat_ms=10, drive_heartbeat_ms=100, temperature_index=None,
        temperature_C_per_unit=0.1,
        note="EPOS4: 0x606C in rpm (0x60A9 default); 1024-count encoder read x4; ratings from the "
             "motor's data sheet must be checked on the bench (docs/drivers_cia402_facts.md)"),
})
DEFAULT_MODEL = "sim-cia402"

#: The PDOs set-up maps (CiA 402 objects; the temperature object is the model's, when it has one):
#: RPDO1 controlword + target torque; TPDO1 statusword + torque actual + DC link voltage;
#: TPDO2 position + velocity actual (the frame the encoder checks pair with); TPDO3 temperature.
PDO_LAYOUT = {
    "rpdo": [("controlword", 0x6040), ("target_torque", 0x6071)],
    "tpdos": [[("statusword", 0x6041), ("torque_actual", 0x6077), ("dc_link", 0x6079)],
              [("position", 0x6064), ("velocity", 0x606C)],
              [("temperature", None)]],
}
#: TPDO3 (temperature) goes every this many SYNCs (CiA 301 transmission type 1..240)
TEMPERATURE_EVERY_SYNCS = 10
_SIGNED = {2, 3, 4}   # INTEGER8/16/32 (CiA 301 7.1.6.4)


def _check_model(model: Any) -> Mapping[str, Any]:
    if not isinstance(model, str) or model not in CIA402_MODELS:
        raise ConfigError(f"model: unknown CiA 402 model {model!r} (known: {', '.join(CIA402_MODELS)})")
    return CIA402_MODELS[model]


class Cia402Driver(MotorDriver):
    """One CiA 402 servo drive in cyclic synchronous torque mode, set up over CANopen.

    bus: python-can bus (the caller's; a canopen Network runs on it only inside set-up calls).
    driver_id: the drive's node id 1..127.  model: a row of :data:`CIA402_MODELS`.  Options:
    ``eds`` (path of the drive's EDS; default the simulated drive's), ``host_node_id`` (the id of
    the host's heartbeat, 1..127, not the drive's; default 0x7F), ``cycle_period_s`` (the loop's
    period, written to 0x1006; default 0.001), ``sdo_timeout_s`` (default 0.3).
    """

    name = "cia402"

    def __init__(self, bus: can.BusABC, driver_id: int, model: str = DEFAULT_MODEL, *,
                 eds: Optional[str] = None, host_node_id: int = 0x7F, cycle_period_s: float = 0.001,
                 sdo_timeout_s: float = 0.3, **unknown: Any):
        if unknown:
            raise ConfigError(f"driver.options.{sorted(unknown)[0]}: unknown option of the cia402 drive "
                              f"(known: eds, host_node_id, cycle_period_s, sdo_timeout_s)")
        if isinstance(driver_id, bool) or not isinstance(driver_id, int) \
                or not NODE_ID_MIN <= driver_id <= NODE_ID_MAX:
            raise ConfigError(f"driver_id: must be a CANopen node id {NODE_ID_MIN}..{NODE_ID_MAX}, got {driver_id!r}")
        super().__init__(bus, driver_id)
        self._ratings = _check_model(model)
        self._model = model
        if isinstance(host_node_id, bool) or not isinstance(host_node_id, int) \
                or not NODE_ID_MIN <= host_node_id <= NODE_ID_MAX or host_node_id == driver_id:
            raise ConfigError(f"driver.options.host_node_id: must be a node id 1..127 other than the "
                              f"drive's ({driver_id}), got {host_node_id!r}")
        if isinstance(cycle_period_s, bool) or not isinstance(cycle_period_s, (int, float)) \
                or not 0.0002 <= cycle_period_s <= 0.02:
            raise ConfigError(f"driver.options.cycle_period_s: must be 0.0002..0.02 s, got {cycle_period_s!r}")
        if isinstance(sdo_timeout_s, bool) or not isinstance(sdo_timeout_s, (int, float)) \
                or not 0.001 <= sdo_timeout_s <= 5.0:
            raise ConfigError(f"driver.options.sdo_timeout_s: must be 0.001..5 s, got {sdo_timeout_s!r}")
        self._eds = DEFAULT_EDS if eds is None else str(eds)
        if not os.path.isfile(self._eds):
            raise ConfigError(f"driver.options.eds: no such file {self._eds!r}")
        self._host_node_id = host_node_id
        self._cycle_period_s = float(cycle_period_s)
        self._sdo_timeout_s = float(sdo_timeout_s)
        self._network = None
        self._node = None
        self._layout: Optional[Dict[str, Any]] = None
        self._rated_Nm = math.nan
        self._identity: Dict[str, Any] = {}

    # --- model table ----------------------------------------------------------------------------

    @classmethod
    def torque_limit_for(cls, model: str, **options: Any) -> float:
        """The model's torque limit [N*m, drive output shaft] (0x6072 x 0x6076 x gear ratio);
        an option the constructor does not know is refused here already (configuration check)."""
        unknown = sorted(set(options) - {"eds", "host_node_id", "cycle_period_s", "sdo_timeout_s"})
        if unknown:
            raise ConfigError(f"driver.options.{unknown[0]}: unknown option of the cia402 drive "
                              f"(known: eds, host_node_id, cycle_period_s, sdo_timeout_s)")
        return float(_check_model(model)["torque_limit_Nm"])

    @property
    def torque_limit_Nm(self) -> float:
        return float(self._ratings["torque_limit_Nm"])

    @property
    def model(self) -> str:
        return self._model

    @property
    def ratings(self) -> Mapping[str, Any]:
        return self._ratings

    @property
    def host_node_id(self) -> int:
        return self._host_node_id

    @property
    def layout(self) -> Dict[str, Any]:
        """The PDO layout written at configure() (the codec's): ids, DLCs, each field's place."""
        if self._layout is None:
            raise ConfigError("layout: no PDO mapping yet; call configure() first")
        return self._layout

    @property
    def identity(self) -> Dict[str, Any]:
        """What the drive says it is (0x1008 device name, 0x1018 vendor / product / revision),
        read at configure()."""
        return dict(self._identity)

    @property
    def rated_torque_Nm(self) -> float:
        """0x6076 as read from the drive, at the output shaft (x gear ratio) [N*m]."""
        return self._rated_Nm

    @property
    def watchdog_s(self) -> float:
        """The drive's loss-of-host time: its heartbeat consumer time for the host [s]."""
        return self._ratings["consumer_ms"] * 1e-3

    # --- canopen on the caller's bus, only while a set-up call runs ----------------------------

    @contextlib.contextmanager
    def _canopen(self):
        import canopen
        if self._network is None:
            self._network = canopen.Network(self._bus)
            try:
                self._node = self._network.add_node(self._node_id, self._eds)
            except Exception as e:          # a malformed EDS: canopen raises what its parser does
                raise ConfigError(f"driver.options.eds: {self._eds}: not a usable EDS ({e})") from None
            self._node.sdo.RESPONSE_TIMEOUT = self._sdo_timeout_s
        self._network.bus = self._bus
        # the network's listener thread reads the bus only inside set-up: the tick owns it after
        notifier = can.Notifier(self._bus, self._network.listeners, 0.005)
        self._network.notifier = notifier
        try:
            yield self._node
        finally:
            notifier.stop(1.0)
            self._network.notifier = None

    def rebind(self, bus: can.BusABC) -> None:
        super().rebind(bus)
        if self._network is not None:
            self._network.bus = bus

    def _sdo_read(self, index: int, sub: int = 0) -> int:
        import canopen
        var = self._node.sdo[index] if sub == 0 and not _is_composite(self._node, index) \
            else self._node.sdo[index][sub]
        try:
            return var.raw
        except canopen.SdoAbortedError as e:
            raise ConfigError(f"{_name(self._node, index, sub)}: the drive refused the read ({e})") from None
        except canopen.SdoCommunicationError as e:
            raise DriverTimeout(f"driver {self._node_id:#x}: {_name(self._node, index, sub)}: no SDO answer ({e})") from None

    def _sdo_write(self, index: int, sub: int, value: int, why: str) -> None:
        import canopen
        var = self._node.sdo[index] if sub == 0 and not _is_composite(self._node, index) \
            else self._node.sdo[index][sub]
        log.info("volatile: %s = %s (%s)", _name(self._node, index, sub), value, why)
        try:
            var.raw = value
        except canopen.SdoAbortedError as e:
            raise ConfigError(f"{_name(self._node, index, sub)}: the drive refused {value} ({e})") from None
        except canopen.SdoCommunicationError as e:
            raise DriverTimeout(f"driver {self._node_id:#x}: {_name(self._node, index, sub)}: no SDO answer ({e})") from None

    # --- lifecycle hooks --------------------------------------------------------------------------

    def _configure(self) -> None:
        """Bring-up: NMT pre-operational, the drive's settings checked against the model, CST
        mode, SYNC / heartbeat producer / communication cycle, the PDO mapping written (all
        volatile), torque off.  ConfigError names the object that is wrong."""
        r = self._ratings
        with self._canopen() as node:
            od = node.object_dictionary
            for index in (0x6040, 0x6041, 0x6060, 0x6071, 0x6072, 0x6076, 0x6077, 0x6064, 0x606C,
                          0x1016, 0x1017, 0x1400, 0x1600, 0x1800, 0x1A00, 0x1801, 0x1A01, 0x6007):
                if index not in od:
                    raise ConfigError(f"driver.options.eds: {self._eds} has no object {index:#06x}, "
                                      f"which cyclic synchronous torque needs")
            node.nmt.send_command(0x80)           # enter pre-operational: PDOs off while mapping
            device_type = self._sdo_read(0x1000)
            self._identity = {
                "device_name": self._sdo_read(0x1008) if 0x1008 in od else "",
                **({k: self._sdo_read(0x1018, sub) for sub, k in ((1, "vendor_id"), (2, "product_code"),
                                                                  (3, "revision"))} if 0x1018 in od else {})}
            log.info("driver %#x: %s", self._node_id, self._identity)
            if device_type & 0xFFFF != 402:
                raise ConfigError(f"0x1000 device type: {device_type:#010x}, need a CiA 402 device (0x....0192)")
            if 0x6502 in od:
                modes = self._sdo_read(0x6502)
                if not modes & (1 << 9):
                    raise ConfigError(f"0x6502 supported drive modes: {modes:#010x}, need bit 9 (cyclic synchronous torque)")
            sync_id = self._sdo_read(0x1005) if 0x1005 in od else 0x80
            if sync_id & 0x7FF != 0x080:
                raise ConfigError(f"0x1005 COB-ID SYNC: {sync_id:#x}, need 0x80 (the tick's SYNC)")
            rated = self._sdo_read(0x6076)
            if rated != r["rated_torque_mNm"]:
                raise ConfigError(f"0x6076 motor rated torque: {rated} mN*m, need {r['rated_torque_mNm']} mN*m "
                                  f"(model {self._model})")
            if 0x6091 in od:
                motor, shaft = self._sdo_read(0x6091, 1), self._sdo_read(0x6091, 2)
                if shaft == 0 or motor != r["gear_ratio"] * shaft:
                    raise ConfigError(f"0x6091 gear ratio: {motor}:{shaft} motor:shaft revolutions, need "
                                      f"{r['gear_ratio']}:1 (model {self._model})")
            if 0x608F in od:
                inc, revs = self._sdo_read(0x608F, 1), self._sdo_read(0x608F, 2)
                if revs == 0 or inc != r["counts_per_rev"] * revs:
                    raise ConfigError(f"0x608F position encoder resolution: {inc} increments per {revs} "
                                      f"revolution(s), need {r['counts_per_rev']} per 1 (model {self._model})")
            limit = self._sdo_read(0x6072)
            if limit > r["max_torque_permille"]:
                raise ConfigError(f"0x6072 max torque: {limit} per mille, need <= {r['max_torque_permille']} "
                                  f"(the model's torque limit {r['torque_limit_Nm']:g} N*m)")
            if limit < r["max_torque_permille"]:
                raise ConfigError(f"0x6072 max torque: {limit} per mille, need {r['max_torque_permille']} "
                                  f"(below it the drive clips the controller's torque silently)")
            self._sdo_write(0x6040, 0, 0x0006, "shutdown: torque off while setting up")
            self._sdo_write(0x6060, 0, CSP_TORQUE_MODE, "cyclic synchronous torque")
            shown = self._sdo_read(0x6061) if 0x6061 in od else CSP_TORQUE_MODE
            if _signed8(shown) != CSP_TORQUE_MODE:
                raise ConfigError(f"0x6061 modes of operation display: {_signed8(shown)}, need "
                                  f"{CSP_TORQUE_MODE} (cyclic synchronous torque)")
            self._sdo_write(0x1006, 0, int(round(self._cycle_period_s * 1e6)), "communication cycle period, us")
            self._sdo_write(0x1017, 0, r["drive_heartbeat_ms"], "the drive's heartbeat, ms")
            self._sdo_write(0x6007, 0, FAULT_SIGNAL, "on loss of the host: fault (torque off)")
            self._layout = self._map_pdos(node)
        self._rated_Nm = rated * 1e-3 * r["gear_ratio"]

    def _map_pdos(self, node) -> Dict[str, Any]:
        """Write the mapping of :data:`PDO_LAYOUT` with canopen's PDO API; return the layout."""
        od = node.object_dictionary
        log.info("volatile: PDO mapping RPDO1, TPDO1..3 (SYNC-driven)")
        layout: Dict[str, Any] = {}
        rpdo = node.rpdo[1]
        rpdo.clear()
        for field, index in PDO_LAYOUT["rpdo"]:
            rpdo.add_variable(index)
        rpdo.cob_id, rpdo.trans_type, rpdo.enabled = 0x200 + self._node_id, 1, True
        self._save(rpdo, "RPDO1")
        layout["rpdo"] = (rpdo.cob_id, rpdo.length // 8)
        layout.update(_fields(rpdo, PDO_LAYOUT["rpdo"], 0))
        tpdos = []
        temp_index = self._ratings["temperature_index"]
        for i, entries in enumerate(PDO_LAYOUT["tpdos"]):
            entries = [(f, temp_index if f == "temperature" else idx) for f, idx in entries]
            entries = [(f, idx) for f, idx in entries if idx is not None and idx in od]
            if not entries:
                continue
            if i + 1 not in node.tpdo.map or 0x1800 + i not in od:
                raise ConfigError(f"{0x1800 + i:#06x} TPDO{i + 1} communication parameter: not in the "
                                  f"EDS, needed for {entries[0][0]}")
            tpdo = node.tpdo[i + 1]
            tpdo.clear()
            for _, idx in entries:
                tpdo.add_variable(idx)
            tpdo.cob_id = 0x180 + 0x100 * i + self._node_id
            tpdo.trans_type = TEMPERATURE_EVERY_SYNCS if entries[0][0] == "temperature" else 1
            tpdo.enabled = True
            self._save(tpdo, f"TPDO{i + 1}")
            layout.update(_fields(tpdo, entries, len(tpdos)))
            tpdos.append((tpdo.cob_id, tpdo.length // 8))
        # every other PDO off, so nothing else rides on the tick's SYNC
        for maps, first, name in ((node.rpdo, 2, "RPDO"), (node.tpdo, len(PDO_LAYOUT["tpdos"]) + 1, "TPDO")):
            for n in list(maps.map):
                if n >= first:
                    m = maps[n]
                    m.read(from_od=True)
                    if m.cob_id is not None:
                        m.enabled = False
                        self._save(m, f"{name}{n}")
        layout["tpdos"] = tpdos
        return layout

    def _save(self, pdo_map, what: str) -> None:
        import canopen
        try:
            pdo_map.save()
        except canopen.SdoAbortedError as e:
            raise ConfigError(f"{pdo_map.com_record.od.index:#06x} {what} mapping: the drive refused it ({e})") from None
        except canopen.SdoCommunicationError as e:
            raise DriverTimeout(f"driver {self._node_id:#x}: {what} mapping: no SDO answer ({e})") from None

    def _heartbeat(self) -> None:
        # the host's heartbeat (state Operational): keeps the drive's consumer fed during set-up
        self._send_message(can.Message(arbitration_id=0x700 + self._host_node_id, data=[0x05],
                                       is_extended_id=False))

    def _statusword(self) -> int:
        self._heartbeat()
        return self._sdo_read(0x6041)

    def _step(self, controlword: int, mask: int, value: int, state: str, timeout_s: float) -> int:
        self._heartbeat()
        self._sdo_write(0x6040, 0, controlword, f"controlword: {state}")
        deadline = time.monotonic() + timeout_s
        while True:
            sw = self._statusword()
            if sw & mask == value:
                return sw
            if sw & 0x08 or time.monotonic() > deadline:
                raise self._refusal(sw, f"controlword {controlword:#06x} ({state})")

    def _refusal(self, sw: int, what: str) -> HalError:
        from ._cia402 import describe_emcy, statusword_state
        if sw & 0x08:
            code = self._sdo_read(0x603F) if 0x603F in self._node.object_dictionary else 0
            return DriverFault(f"driver {self._node_id:#x}: {what}: drive in {statusword_state(sw)}, "
                               f"0x603F error code {describe_emcy(code)}", code, describe_emcy(code))
        return DriverTimeout(f"driver {self._node_id:#x}: {what}: 0x6041 statusword {sw:#06x} "
                             f"({statusword_state(sw)}), not confirmed")

    def _activate(self, timeout_s: float) -> int:
        """Arm the heartbeat consumer of the host (0x1016, volatile), NMT operational, the state
        machine to Operation Enabled (a fault left from before is reset once: no torque is on
        yet), confirmed by the statusword.  On failure: torque off (best effort), raise."""
        r = self._ratings
        with self._canopen() as node:
            try:
                self._sdo_write(0x1016, 1, (self._host_node_id << 16) | r["consumer_ms"],
                                "heartbeat consumer of the host: the drive's loss-of-host protection")
                self._heartbeat()                 # the consumer starts with the first heartbeat
                node.nmt.send_command(0x01)       # start remote node: operational (PDOs on)
                sw = self._statusword()
                if sw & 0x4F == 0x08:             # Fault from before (torque is off): reset once
                    log.info("driver %#x: fault reset (0x6040 = 0x80) before enabling", self._node_id)
                    self._sdo_write(0x6040, 0, 0x0000, "controlword: clear for the fault reset edge")
                    self._step(CIA402_FAULT_RESET, 0x4F, 0x40, "fault reset", timeout_s)
                self._step(0x0006, 0x6F, 0x21, "shutdown -> ready to switch on", timeout_s)
                self._step(0x0007, 0x6F, 0x23, "switch on", timeout_s)
                return self._step(0x000F, 0x6F, 0x27, "enable operation", timeout_s)
            except HalError:
                self._torque_off_best_effort("after a failed activation")
                raise

    def _torque_off_best_effort(self, why: str) -> None:
        """On the way out of a failed set-up step (inside ``_canopen``): shutdown, the consumer
        disarmed (the host's heartbeat stops now: the drive must not fault for it), NMT
        pre-operational.  The original error is what the caller must see: failures here are
        swallowed."""
        for index, sub, value, what in ((0x6040, 0, 0x0006, "controlword: shutdown"),
                                        (0x1016, 1, 0, "heartbeat consumer off")):
            with contextlib.suppress(HalError, Exception):
                self._sdo_write(index, sub, value, f"{what} {why}")
        with contextlib.suppress(Exception):
            self._node.nmt.send_command(0x80)

    def _deactivate(self, timeout_s: float) -> int:
        """Torque off (controlword shutdown, confirmed Ready to switch on), the heartbeat
        consumer disarmed (the host's heartbeat stops now), NMT pre-operational."""
        with self._canopen() as node:
            sw = self._statusword()
            if not sw & 0x08:       # in Fault torque is already off: the fault stays for the host to see
                try:
                    sw = self._step(0x0006, 0x6F, 0x21, "shutdown -> ready to switch on", timeout_s)
                except HalError:
                    # the drive may fault meanwhile by itself: its heartbeat consumer sees the
                    # tick's heartbeat stop when the loop ends.  In Fault its torque is off too.
                    sw = self._statusword()
                    if not sw & 0x08:
                        raise
                    log.info("driver %#x: shutdown: the drive went to Fault by itself (torque off)",
                             self._node_id)
            self._sdo_write(0x1016, 1, 0, "heartbeat consumer off: the host stops")
            node.nmt.send_command(0x80)
            return sw

    def verify(self, timeout_s: float = 0.1) -> Dict[str, Any]:
        """The commissioning check (ACTIVE): the heartbeat consumer and the fault reaction read
        back as written, and every SYNC answered by the TPDOs with Operation Enabled (the cyclic
        readings arrive once per tick, i.e. at the loop rate).  On a mismatch: torque off,
        INACTIVE, ConfigError / DriverTimeout."""
        self._require("verify", DriverState.ACTIVE)
        r = self._ratings
        try:
            with self._canopen():
                self._heartbeat()
                consumer = self._sdo_read(0x1016, 1)
                want = (self._host_node_id << 16) | r["consumer_ms"]
                if consumer != want:
                    raise ConfigError(f"0x1016 consumer heartbeat time: {consumer:#010x}, need {want:#010x} "
                                      f"(host node {self._host_node_id}, {r['consumer_ms']} ms)")
                reaction = _signed16(self._sdo_read(0x6007))
                if reaction != FAULT_SIGNAL:
                    raise ConfigError(f"0x6007 abort connection option code: {reaction}, need {FAULT_SIGNAL} (fault)")
            ids = {cob for cob, _ in self.layout["tpdos"] if cob != self._temperature_cob()}
            for k in range(3):
                self._drain()
                for msg in self.hold_messages():
                    self._send_message(msg)
                seen, deadline = {}, time.monotonic() + timeout_s
                while set(seen) != ids:
                    left = deadline - time.monotonic()
                    msg = self._recv(left) if left > 0 else None
                    if msg is None:
                        raise DriverTimeout(f"driver {self._node_id:#x}: SYNC {k + 1}: TPDO(s) "
                                            f"{', '.join(hex(i) for i in sorted(ids - set(seen)))} "
                                            f"not sent within {timeout_s} s")
                    if msg.arbitration_id in ids:
                        seen[msg.arbitration_id] = bytes(msg.data)
                sw_field = self.layout["statusword"]
                data = seen[self.layout["tpdos"][sw_field["pdo"]][0]]
                sw = int.from_bytes(data[sw_field["offset"]:sw_field["offset"] + 2], "little")
                if sw & 0x6F != 0x27:
                    raise self._refusal(sw, f"SYNC {k + 1}")
        except HalError:
            with self._canopen():
                self._torque_off_best_effort("after a failed verify")
            self._state = DriverState.INACTIVE
            raise
        return {"consumer_heartbeat": consumer, "abort_connection_option": reaction, "syncs_answered": 3}

    def _temperature_cob(self) -> Optional[int]:
        f = self.layout.get("temperature")
        return None if f is None else self.layout["tpdos"][f["pdo"]][0]

    def hold_messages(self) -> List[can.Message]:
        """Zero torque (RPDO: controlword Enable operation, target torque 0), SYNC, the host's heartbeat."""
        self._require("hold_messages", DriverState.ACTIVE)
        from ._cia402 import pack_rpdo
        lay = self.layout
        return [can.Message(arbitration_id=lay["rpdo"][0], data=pack_rpdo(lay, 0x000F, 0), is_extended_id=False),
                can.Message(arbitration_id=0x080, data=b"", is_extended_id=False),
                can.Message(arbitration_id=0x700 + self._host_node_id, data=[0x05], is_extended_id=False)]


CIA402_FAULT_RESET = 0x0080


def cia402_codec(driver: Cia402Driver):
    """The per-tick codec (:class:`hal._cia402.Cia402Codec`) of a configured :class:`Cia402Driver`:
    its PDO layout, ids, the rated torque it read, the model's scales and heartbeat times."""
    from hal._cia402 import Cia402Codec
    r = driver.ratings
    gear = r["gear_ratio"]
    return Cia402Codec(driver.layout, driver.node_id, driver.host_node_id, driver.rated_torque_Nm,
                       driver.torque_limit_Nm, _TWO_PI / r["counts_per_rev"] / gear,
                       r["velocity_unit_rad_s"] / gear, r["velocity_limit_rad_s"], driver.watchdog_s,
                       r["host_heartbeat_ms"] * 1e-3, r["temperature_C_per_unit"], 0.001)


# --- helpers ------------------------------------------------------------------------------------

def _is_composite(node, index: int) -> bool:
    import canopen
    obj = node.object_dictionary[index]
    return isinstance(obj, (canopen.objectdictionary.ODRecord, canopen.objectdictionary.ODArray))


def _name(node, index: int, sub: int) -> str:
    try:
        obj = node.object_dictionary[index]
        if sub == 0 and not _is_composite(node, index):
            name = obj.name
        else:
            part = obj[sub].name
            name = part if part.lower().startswith(obj.name.lower()) else f"{obj.name} {part}"
    except KeyError:
        name = "?"
    label = f"{index:#06x}" if sub == 0 and not _is_composite(node, index) else f"{index:#06x}:{sub}"
    return f"{label} {name.lower() if name else ''}".rstrip()


def _fields(pdo_map, entries, pdo_no: int) -> Dict[str, Dict[str, Any]]:
    out = {}
    for (field, _), var in zip(entries, pdo_map.map):
        out[field] = {"pdo": pdo_no, "offset": var.offset // 8, "size": var.length // 8,
                      "signed": var.od.data_type in _SIGNED}
    return out


def _signed8(v: int) -> int:
    return v - 256 if v > 127 else v


def _signed16(v: int) -> int:
    return v - 65536 if v > 32767 else v

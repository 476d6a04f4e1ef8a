# cython: language_level=3
"""One control tick on the host: frames in, estimator -> controller -> safety, frame out.

``Tick`` owns the tick's fixed records (Inputs, GaitState, Command) and the
three kernels.  The runner (``controller.runtime.loop``) moves frames between the bus
and this object: ``ingest`` decodes one received frame into Inputs, ``update``
runs the kernels without the GIL, ``command_payload`` packs the driver frame,
``publish`` writes one telemetry row.  The drive is a :class:`hal._codec.DriveCodec` (set in
``configure``): the tick knows no drive protocol; the codec encodes the bounded command into
the drive's frames and decodes its replies, converted to the ankle side with the transmission
parameters the tick gives it.

Parameter changes reach the kernels by one path: :meth:`Tick.take_params` (without the GIL),
called by every loop once per tick after the telemetry row; at a stride boundary it takes a
change its publisher validated and blended (``controller.runtime.retune``), decides from the
tick's own state whether it may take it, and moves one ramp step per boundary.
"""
from libc.math cimport NAN, fabs, isfinite
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy
from controller.kernels._params cimport *
from controller.runtime._ring cimport ParamChannel, PARAM_MAX_STEPS, SNAP_COUNT, SNAP_BASE
from controller.kernels._types cimport Inputs, GaitState, Command, reset_inputs
# the generated constants (codegen.py): modes, and T_<COLUMN> / N_TELEMETRY for publish_row
from controller.kernels._tables cimport *
from controller.kernels._estimator cimport Estimator
from controller.kernels._pushoff cimport PushoffController
from controller.kernels._safety cimport Safety
from hal._codec cimport DriveCodec, DRIVE_MAX_FRAMES
from hal._link cimport FrameLink, CanFrame, LINK_ERROR, LINK_EXTENDED, LINK_REMOTE
from hal._sensor_frames cimport (ImuFrame, LoadFrame, StatusFrame, SoundFrame, decode_imu, decode_load,
    decode_status, decode_sound, SENSOR_IMU_ID, SENSOR_LOAD_ID, SENSOR_STATUS_ID, SENSOR_SOUND_ID)

#: Columns of a telemetry row, in order (``publish``): declared, with units and meanings, in
#: controller/kernels/telemetry.py; publish_row writes them at the generated T_* indices.
from controller.kernels.telemetry import TELEMETRY_COLUMNS

#: The sound-side node's columns are NaN when its last frame is older than this [s]: 10 frames
#: of the 500 Hz node.
SOUND_TIMEOUT_S = 0.02
cdef double _SOUND_TIMEOUT_S = SOUND_TIMEOUT_S
#: Standing still, for changes that must not happen while the wearer moves (parameters that are
#: not live, and calibration): not walking, and the shank slower than STILL_GYRO_RAD_S for STILL_S.
#: Quiet standing sways the shank at a few hundredths of rad/s; a step turns it at several rad/s.
STILL_GYRO_RAD_S = 1.0
STILL_S = 1.0
cdef double _STILL_GYRO_RAD_S = STILL_GYRO_RAD_S
cdef double _STILL_S = STILL_S
#: Why the tick refused a parameter change (the ParamChannel's ``params_refusal_code`` word; the
#: supervisor says it in words, controller.runtime.retune.refusal_text).
REFUSAL_CODES = {"startup": 1, "moving": 2, "malformed": 3, "driver_range": 4}
cdef enum:
    REFUSED_STARTUP = 1        # a start-up parameter differs (loop.rate_Hz)
    REFUSED_MOVING = 2         # a parameter that is not live differs, and the wearer walks or moved
    REFUSED_MALFORMED = 3      # the publication's step count or values are not usable
    REFUSED_DRIVER_RANGE = 4   # actuator.max_torque_Nm beyond the drive's torque range
    # how _apply takes a vector
    APPLY_START = 0            # set-up: every kernel starts afresh
    APPLY_LIVE = 1             # a live change (a ramp step): what the kernels learned stays
    APPLY_STANDING = 2         # not-live parameters, standing still: estimator and monitor afresh
#: Most parameters a refusal can name (two 64-bit words of ParamChannel).
MAX_NAMED_PARAMS = 128
if N_PARAMS > MAX_NAMED_PARAMS:
    raise ImportError(f"{N_PARAMS} parameters: a refusal names at most {MAX_NAMED_PARAMS}")
#: Parameters in the vector the kernels were built for (controller.params.codegen): must be the
#: registry's count (controller.runtime.loop.build_tick checks).
PARAM_COUNT = N_PARAMS
# Sequence bookkeeping (_count_seq): the node's IMU and load rate (hal/sensor_node.dbc, 1 kHz),
# the most a gap may exceed it, and frames a single read may bunch.  Protocol facts, not tuning.
cdef double _SEQ_RATE_HZ = 1000.0
cdef double _SEQ_RATE_FACTOR = 1.5
cdef double _SEQ_SLACK = 2.0


def compiled_tables():
    """The generated constants (``_tables.pxd``: fault and warning bits, modes, phase sources,
    telemetry indices) as this module was compiled with them, name -> value."""
    return tables_as_compiled()


# A module compiled from other tables would report faults and columns under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class Tick:
    """The host's per-tick kernel.  Build it with :func:`controller.runtime.loop.build_tick`."""
    def __cinit__(self):
        self.estimator = Estimator()
        self.controller = PushoffController()
        self.safety = Safety()
        self.frames_lost = 0
        self.last_imu_seq = -1
        self.last_load_seq = -1
        self.last_imu_seq_s = self.last_load_seq_s = -1.0
        self.poison_command = False
        self.frames_sent = self.send_errors = self.error_frames = 0
        self.send_failures_run = self.error_ticks_run = 0
        self.moved_s = 0.0
        self.sound_load_N = self.sound_gyro_rad_s = NAN
        self.sound_rx_s = -1.0
        self.timing[0] = self.timing[1] = self.timing[2] = self.timing[3] = NAN
        # no parameter value of its own until configure(): the transmission is NaN, and an
        # unconfigured tick cannot run (update, start and take_params refuse)
        self.configured = False
        self.ratio = self.efficiency = self.direction = NAN
        self.motor_per_ankle_rad = self.motor_gain_per_ankle_gain = NAN
        self.ankle_zero_rad = self.motor_zero_rad = self.gyro_bias_rad_s = self.load_offset_N = NAN
        self.ramp_next = self.ramp_count = 0
        self.ramp_generation = 0
        self.params_version = 0
        self._params_seen = -1
        self._params = None
        self._reset_inputs()

    def configure(self, params, DriveCodec codec not None):
        """Configure the kernels and the drive (set-up time, not in the tick).

        ``codec``: the drive's per-tick codec (:func:`hal.drives.build_codec`), built from what
        was checked at commissioning; the tick holds it and sets its transmission.
        """
        cdef double p[N_PARAMS]
        fill_vector(params, p)
        self.codec = codec
        # a torque-only drive cannot run the safe states' spring-damper: the host runs it
        self.safety.host_impedance = not codec.impedance
        self.estimator.use_shank = True
        with nogil:
            self._apply(p, APPLY_START)
        self.ramp_next = self.ramp_count = 0
        self._remember(params)
        self.configured = True

    @property
    def params(self):
        """The ParamSet in force (the ramp's present step while a change ramps in)."""
        if self._params_seen != self.params_version:
            from controller.params.registry import ParamSet
            self._params = ParamSet.from_vector([self.applied[i] for i in range(N_PARAMS)])
            self._params_seen = self.params_version
        return self._params

    def _remember(self, params):
        self._params, self._params_seen = params, self.params_version

    def settings(self):
        """The values configure() set in the tick itself (transmission and calibration), by
        field name (tools and tests; the kernels' own: estimator/controller/safety.settings())."""
        return {"ratio": self.ratio, "efficiency": self.efficiency, "direction": self.direction,
                "motor_per_ankle_rad": self.motor_per_ankle_rad,
                "motor_gain_per_ankle_gain": self.motor_gain_per_ankle_gain,
                "ankle_zero_rad": self.ankle_zero_rad, "motor_zero_rad": self.motor_zero_rad,
                "gyro_bias_rad_s": self.gyro_bias_rad_s, "load_offset_N": self.load_offset_N}

    @property
    def ramp_steps_left(self):
        """Ramp steps of an accepted change still to take (one per stride boundary)."""
        return self.ramp_count - self.ramp_next

    def fixed_changes(self, params):
        """Names of the parameters that are not ``live`` and differ between ``params`` and the set
        in force: those may change only while the wearer stands."""
        from controller.params.registry import REGISTRY
        now = self.params
        return [p.name for p in REGISTRY if not p.live and params[p.name] != now[p.name]]

    def startup_changes(self, params):
        """Names of the start-up parameters (``Param.startup``, e.g. ``loop.rate_Hz``) that differ
        between ``params`` and the set in force: those never change while running."""
        from controller.params.registry import REGISTRY
        now = self.params
        return [p.name for p in REGISTRY if p.startup and params[p.name] != now[p.name]]

    def retune(self, params, bint allow_fixed=False):
        """Take new parameter values whole, at once (tools and tests; the loops take changes
        through :meth:`take_params`, which ramps them in).

        Live changes keep what the kernels learned and measured (stride template,
        push-off corrections, thermal state, fault latches).  A change to a parameter
        that is not ``live`` raises ValueError naming it, unless ``allow_fixed`` (the
        wearer stands): then the estimator and the monitor start afresh, the thermal
        model, the push-off corrections and the fault latches stay.  A change to a
        start-up parameter always raises: the runner's period was fixed at the start
        (a loop rate the cadence does not tick at would latch ``overrun`` at once).
        A ramp in progress is dropped.
        """
        cdef double p[N_PARAMS]
        cdef int how
        require_configured(self.configured, "Tick")
        startup = self.startup_changes(params)
        if startup:
            raise ValueError(f"{', '.join(startup)} is set when the controller starts, not while it runs")
        fixed = self.fixed_changes(params)
        if fixed and not allow_fixed:
            raise ValueError(f"cannot change while running: {', '.join(fixed)}")
        if params["actuator.max_torque_Nm"] > self.codec.torque_limit_Nm:
            raise ValueError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N*m is beyond "
                             f"the driver's {self.codec.torque_range_name} {self.codec.torque_limit_Nm:g} N*m")
        how = APPLY_STANDING if fixed else APPLY_LIVE
        fill_vector(params, p)
        with nogil:
            self._apply(p, how)
        self.ramp_next = self.ramp_count = 0
        self._remember(params)

    cdef void _apply(self, const double* p, int how) noexcept nogil:
        """Every kernel takes the vector ``p`` (see APPLY_*); it becomes the set in force."""
        cdef double v_max = self.codec.velocity_limit_rad_s
        self.estimator.configure_from(p, how == APPLY_LIVE)
        self.controller.configure_from(p)
        self.safety.configure_from(p, how != APPLY_START, v_max)
        if how == APPLY_STANDING:
            self.safety.monitor.configure_from(p, False)
            self.safety.monitor.begin(self.safety.last_now_s)
        if how != APPLY_LIVE:
            self._set_transmission(p)
        memcpy(self.applied, p, N_PARAMS * sizeof(double))
        self.params_version += 1

    cdef void _set_transmission(self, const double* p) noexcept nogil:
        """Transmission and sensor calibration: how readings and set-points map to the ankle."""
        self.ankle_zero_rad = p[P_CALIBRATION_ANKLE_ZERO_RAD]
        self.motor_zero_rad = p[P_CALIBRATION_MOTOR_ZERO_RAD]
        self.gyro_bias_rad_s = p[P_CALIBRATION_GYRO_BIAS_RAD_S]
        self.load_offset_N = p[P_CALIBRATION_LOAD_OFFSET_N]
        self.ratio = p[P_ACTUATOR_RATIO]
        self.efficiency = p[P_ACTUATOR_EFFICIENCY]
        self.direction = p[P_ACTUATOR_DIRECTION]
        self.motor_per_ankle_rad = self.direction * self.ratio
        self.motor_gain_per_ankle_gain = 1.0 / (self.efficiency * self.ratio * self.ratio)
        self.codec.set_transmission(self.ratio, self.efficiency, self.direction, self.motor_zero_rad)
        self.codec.set_period(1.0 / p[P_LOOP_RATE_HZ])

    # ---- the one path of a parameter change -------------------------------------------------

    cdef void take_params(self, ParamChannel ch) noexcept nogil:
        """Called by every loop once per tick, after its telemetry row: at a stride boundary (a
        heel strike, or any tick while not walking) take a change newly published on ``ch``,
        accept or refuse it from the tick's own state (reported on ``ch`` by generation), and
        move an accepted ramp one step.  A refused change alters nothing: a ramp in progress goes
        on.  No allocation, no GIL, never fails."""
        if not self.configured or ch.n != N_PARAMS or not self.at_stride_boundary():
            return
        if ch.published.take(self.staged):
            self._consider(ch, ch.published.seen // 2)
        if self.ramp_next < self.ramp_count:
            self._apply(&self.ramp[self.ramp_next * N_PARAMS], APPLY_LIVE)
            self.ramp_next += 1
            if self.ramp_next == self.ramp_count:
                ch.report_applied(self.ramp_generation)

    cdef void _consider(self, ParamChannel ch, uint64_t generation) noexcept nogil:
        cdef double c = self.staged[SNAP_COUNT]
        cdef int count, i, j, k, flags
        cdef uint64_t startup0 = 0, startup1 = 0, fixed0 = 0, fixed1 = 0, bit
        cdef const double* base = &self.staged[SNAP_BASE]
        cdef const double* target
        cdef const double* step
        cdef double share, x, lo, hi
        if not (c >= 1.0 and c <= PARAM_MAX_STEPS and c == <int>c):
            ch.report_refused(generation, REFUSED_MALFORMED, 0, 0)
            return
        count = <int>c
        target = &self.staged[SNAP_BASE + count * N_PARAMS]
        for i in range((count + 1) * N_PARAMS):
            if not isfinite(base[i]):
                ch.report_refused(generation, REFUSED_MALFORMED, 0, 0)
                return
        if target[P_ACTUATOR_MAX_TORQUE_NM] > self.codec.torque_limit_Nm:
            bit = (<uint64_t>1) << (P_ACTUATOR_MAX_TORQUE_NM % 64)
            ch.report_refused(generation, REFUSED_DRIVER_RANGE,
                              bit if P_ACTUATOR_MAX_TORQUE_NM < 64 else 0,
                              bit if P_ACTUATOR_MAX_TORQUE_NM >= 64 else 0)
            return
        for j in range(N_PARAMS):
            if target[j] == self.applied[j]:
                continue
            flags = param_flags(j)
            bit = (<uint64_t>1) << (j % 64)
            if flags & PARAM_FLAG_STARTUP:
                if j < 64:
                    startup0 |= bit
                else:
                    startup1 |= bit
            elif not (flags & PARAM_FLAG_LIVE):
                if j < 64:
                    fixed0 |= bit
                else:
                    fixed1 |= bit
        if startup0 or startup1:
            ch.report_refused(generation, REFUSED_STARTUP, startup0, startup1)
            return
        if (fixed0 or fixed1) and (self.estimator.state.walking
                                   or self.safety.last_now_s - self.moved_s < _STILL_S):
            ch.report_refused(generation, REFUSED_MOVING, fixed0, fixed1)
            return
        ch.report_accepted(generation, target)
        if fixed0 or fixed1:
            # standing still: at once (the publisher sends such a change as one step)
            self._apply(target, APPLY_STANDING)
            self.ramp_next = self.ramp_count = 0
            ch.report_applied(generation)
            return
        # The publisher blended its steps from ``base``, the set it knew in force.  The tick may
        # be elsewhere (a ramp of the change before still going): each step then moves from where
        # the tick is, the offset shrinking to nothing at the target -- the same straight line
        # from the tick's set to the target.  Whole numbers move at the last step.
        for k in range(count):
            share = (k + 1.0) / count
            step = &self.staged[SNAP_BASE + (k + 1) * N_PARAMS]
            for j in range(N_PARAMS):
                if param_flags(j) & PARAM_FLAG_WHOLE:
                    self.ramp[k * N_PARAMS + j] = target[j] if k == count - 1 else self.applied[j]
                else:
                    x = step[j] + (1.0 - share) * (self.applied[j] - base[j])
                    # between where the tick is and the target, to the last bit (rounding must
                    # not take a value a hair past a bound both ends respect)
                    lo = self.applied[j] if self.applied[j] <= target[j] else target[j]
                    hi = target[j] if self.applied[j] <= target[j] else self.applied[j]
                    self.ramp[k * N_PARAMS + j] = lo if x < lo else (hi if x > hi else x)
        self.ramp_next = 0
        self.ramp_count = count
        self.ramp_generation = generation

    def take(self, ParamChannel ch):
        """:meth:`take_params` for the Python loops (the lock-step harness, the python-can loop)."""
        with nogil:
            self.take_params(ch)

    def _reset_inputs(self):
        reset_inputs(&self.inp)

    def start(self, double now_s):
        """Begin supervised control at ``now_s``; the driver's activation reply counts as heard.
        Until :data:`STILL_S` has passed, the wearer counts as moving (nothing is known yet)."""
        require_configured(self.configured, "Tick")
        self.safety.arm(now_s)
        self.moved_s = now_s

    def still_for_s(self):
        """How long the wearer has stood still (see :data:`STILL_S`), as of the last tick [s]."""
        return self.safety.last_now_s - self.moved_s

    cdef void _count_seq(self, int* last, double* last_s, int seq, double now_s,
                         uint32_t* frames, uint32_t* disorder, uint32_t* lost) noexcept nogil:
        # One frame of a 1 kHz stream with an 8-bit counter.  A step of 1 is in order; a gap
        # counts as lost only if the time since the last in-order frame can explain it (at most
        # 1.5x the node's rate, plus 2 for frames bunched in one read).  The same seq again, a
        # step back (within half the counter range) or a jump the time cannot explain is out of
        # sequence: a duplicate, a late frame or a second sender, never 255 lost frames.
        cdef int step
        cdef double allowed
        frames[0] += 1
        if last[0] < 0:
            last[0] = seq
            last_s[0] = now_s
            return
        step = (seq - last[0]) & 0xFF
        if step == 0 or step >= 128:
            disorder[0] += 1            # behind: the stream goes on from the newest frame
            return
        allowed = (now_s - last_s[0]) * _SEQ_RATE_HZ * _SEQ_RATE_FACTOR + _SEQ_SLACK
        if step - 1 > allowed:
            disorder[0] += 1
        else:
            lost[0] += step - 1
            self.frames_lost += step - 1
        # a jump ahead still moves the stream on, so a node that restarts its counter
        # comes back in step after one out-of-sequence frame
        last[0] = seq
        last_s[0] = now_s

    def ingest(self, unsigned int can_id, const unsigned char[::1] data, double now_s):
        """Decode one received frame into the inputs.  Returns True if it was used.

        Frames that fail to decode, belong to another driver, or carry a
        non-zero sensor status are not used, so their source goes stale and the
        safety stage reports it.
        """
        if data.shape[0] == 0:
            return False
        return self.ingest_frame(can_id, &data[0], data.shape[0], now_s)

    cdef bint ingest_frame(self, unsigned int can_id, const unsigned char* data, int dlc,
                           double now_s) noexcept nogil:
        cdef ImuFrame imu
        cdef LoadFrame load
        cdef StatusFrame status
        cdef SoundFrame sound
        if dlc == 0:
            return False
        if self.codec is not None and self.codec.listens(can_id):
            # the drive's frame: its codec decodes it into the drive readings, ankle side
            return self.codec.decode(can_id, data, dlc, now_s, &self.inp)
        if can_id == SENSOR_IMU_ID:
            if decode_imu(data, dlc, &imu) != 0 or imu.status != 0:
                return False
            self.inp.shank_gyro_rad_s = imu.gyro_z_rad_s - self.gyro_bias_rad_s
            self.inp.accel_x_m_s2 = imu.accel_x_m_s2
            self.inp.accel_y_m_s2 = imu.accel_y_m_s2
            self._count_seq(&self.last_imu_seq, &self.last_imu_seq_s, imu.seq, now_s,
                            &self.inp.imu_frames, &self.inp.imu_disorder, &self.inp.imu_lost)
            self.inp.imu_seq = imu.seq
            self.inp.imu_rx_s = now_s
            return True
        if can_id == SENSOR_LOAD_ID:
            if decode_load(data, dlc, &load) != 0 or load.status != 0:
                return False
            self.inp.load_N = load.load_N - self.load_offset_N
            self.inp.ankle_angle_rad = load.ankle_angle_rad - self.ankle_zero_rad
            self._count_seq(&self.last_load_seq, &self.last_load_seq_s, load.seq, now_s,
                            &self.inp.load_frames, &self.inp.load_disorder, &self.inp.load_lost)
            self.inp.load_seq = load.seq
            self.inp.load_rx_s = now_s
            return True
        if can_id == SENSOR_SOUND_ID:
            if decode_sound(data, dlc, &sound) != 0 or sound.status != 0:
                return False
            self.sound_load_N = sound.load_N
            self.sound_gyro_rad_s = sound.gyro_z_rad_s
            self.sound_rx_s = now_s
            return True
        if can_id == SENSOR_STATUS_ID:
            if decode_status(data, dlc, &status) != 0:
                return False
            self.inp.supply_V = status.supply_V
            self.inp.node_flags = status.flags
            self.inp.node_status_rx_s = now_s
            return True
        return False

    cdef void note_read(self, int error_frames) noexcept nogil:
        self.error_frames += error_frames
        self.error_ticks_run = self.error_ticks_run + 1 if error_frames else 0
        self.inp.send_failures = self.send_failures_run
        self.inp.bus_error_ticks = self.error_ticks_run

    cdef void note_send(self, bint ok) noexcept nogil:
        if ok:
            self.frames_sent += 1
            self.send_failures_run = 0
        else:
            self.send_errors += 1
            self.send_failures_run += 1

    def note_frames(self, int error_frames):
        """The read phase is over: ``error_frames`` error frames came with it (link health)."""
        self.note_read(error_frames)

    def note_sent(self, bint ok):
        """The command frame went out (``ok``) or the send failed (counted; 3 in a row is a fault)."""
        self.note_send(ok)

    cdef void read_link(self, FrameLink link, double now_s) noexcept nogil:
        """The read phase on a GIL-free link: drain it into the inputs."""
        cdef CanFrame f
        cdef int errors = 0
        while link.recv(&f) > 0:
            if f.flags & LINK_ERROR:
                errors += 1
            elif not (f.flags & (LINK_EXTENDED | LINK_REMOTE)) and f.dlc > 0:
                self.ingest_frame(f.can_id, f.data, f.dlc, now_s)
        self.note_read(errors)

    cdef void write_link(self, FrameLink link) noexcept nogil:
        """The write phase on a GIL-free link: the drive's frame(s) of this tick, none when the
        command cannot be encoded (then the drive's watchdog takes over)."""
        cdef CanFrame frames[DRIVE_MAX_FRAMES]
        cdef int n, i
        if self.codec is None:
            return
        n = self.codec.encode(&self.cmd, frames, DRIVE_MAX_FRAMES)
        for i in range(n):
            self.note_send(link.send(&frames[i]) > 0)

    cdef bint at_stride_boundary(self) noexcept nogil:
        """A heel strike now, or not walking: where parameter edits may take effect."""
        return self.estimator.state.heel_strike != 0 or self.estimator.state.walking == 0

    def stride_boundary(self):
        """:meth:`at_stride_boundary` for the Python loop (no dict of the gait state per tick)."""
        return self.at_stride_boundary()

    cdef void _update(self, double now_s) noexcept nogil:
        self.safety.check(&self.inp, now_s)
        self.estimator.step(&self.inp, now_s)
        self.controller.step(&self.estimator.state, &self.inp, self.safety.assist, &self.cmd)
        if self.poison_command:
            self.cmd.torque_ff_Nm = NAN
        self.safety.step(&self.cmd, &self.inp, &self.estimator.state, now_s)
        if self.estimator.state.walking or not (fabs(self.inp.shank_gyro_rad_s) < _STILL_GYRO_RAD_S):
            self.moved_s = now_s

    def update(self, double now_s):
        """Monitor -> estimator -> controller -> safety for the tick at ``now_s`` (without the GIL)."""
        require_configured(self.configured, "Tick")
        with nogil:
            self._update(now_s)

    def note_timing(self, double late_s, double read_s, double update_s, double write_s):
        """The runner's timing of this tick, published with its telemetry row."""
        self.timing[0] = late_s
        self.timing[1] = read_s
        self.timing[2] = update_s
        self.timing[3] = write_s

    def inject_nonfinite_command(self, bint on):
        """Fault injection (simulator, tests, bench): while on, the controller's output is NaN."""
        self.poison_command = on

    def set_inputs(self, dict inputs):
        """Replace the whole Inputs record (tests: drive the kernels with any input sequence)."""
        self.inp = inputs

    def clear_faults(self):
        """Clear latched faults if safe (foot unloaded, causes gone); "" or the reason refused."""
        return self.safety.clear_faults()

    def select_mode(self, int mode):
        """The prosthetist's choice of mode (``controller.kernels.faults.MODES``: walk, passive or
        standby; between ticks).  Returns "" when done, else why not (nothing changed).

        Standby only while the wearer is not walking: unloaded it leaves the ankle free, which
        in swing would drop the toe.  Standby is left only with the foot off the ground: its
        passive spring sits on the driver, the other modes' law does not, so the switch must
        not happen under load.  Faults still take precedence over any choice.
        """
        if mode == self.safety.chosen_mode:
            return ""
        if mode == ANKLE_MODE_STANDBY and self.estimator.state.walking:
            return "refused: standby only while the wearer stands still; nothing changed"
        if self.safety.chosen_mode == ANKLE_MODE_STANDBY and not self.safety.unloaded():
            return ("refused: standby ends only with the foot off the ground (or the load is "
                    "unknown); lift the foot and try again")
        self.safety.select_mode(mode)
        return ""

    def command_payload(self, unsigned char[::1] out):
        """Pack the bounded command as the drive's (first) frame of this tick into ``out``.

        Returns its length (8 for the AK drive), or -1 when the command could not be encoded
        (then nothing must be sent, and the driver's watchdog takes over).
        """
        if out.shape[0] < 8:
            raise ValueError("out must hold 8 bytes")
        return self.pack_command(&out[0])

    def command_frames(self):
        """This tick's frames for the drive, as [(can_id, bytes)] (tools, tests)."""
        cdef CanFrame frames[DRIVE_MAX_FRAMES]
        cdef int n, i
        if self.codec is None:
            return []
        n = self.codec.encode(&self.cmd, frames, DRIVE_MAX_FRAMES)
        return [(frames[i].can_id, bytes(frames[i].data[:frames[i].dlc])) for i in range(n)]

    cdef int pack_command(self, unsigned char* out) noexcept nogil:
        """The payload of the drive's first frame of this tick into ``out`` (8 bytes): its
        length, or -1 when the command cannot be encoded (out untouched)."""
        cdef CanFrame frames[DRIVE_MAX_FRAMES]
        cdef int i
        if self.codec is None or self.codec.encode(&self.cmd, frames, DRIVE_MAX_FRAMES) < 1:
            return -1
        for i in range(frames[0].dlc):
            out[i] = frames[0].data[i]
        return frames[0].dlc

    def publish(self, double[:, ::1] table, Py_ssize_t row):
        """Write this tick's telemetry row (``TELEMETRY_COLUMNS``) into ``table[row]``."""
        if table.shape[1] != N_TELEMETRY or not (0 <= row < table.shape[0]):
            raise IndexError("telemetry table has the wrong shape or row is out of range")
        with nogil:
            self.publish_row(&table[row, 0])

    cdef void publish_row(self, double* r) noexcept nogil:
        cdef GaitState* g = &self.estimator.state
        r[T_T] = self.safety.last_now_s
        r[T_SHANK_GYRO] = self.inp.shank_gyro_rad_s
        r[T_LOAD] = self.inp.load_N
        r[T_ANKLE_ANGLE] = self.inp.ankle_angle_rad
        r[T_PHASE] = g.phase
        r[T_HEEL_STRIKE] = g.heel_strike
        r[T_TOE_OFF] = g.toe_off
        r[T_WALKING] = g.walking
        r[T_STANCE] = g.stance
        r[T_TORQUE_NM] = self.inp.motor_torque_Nm
        r[T_TORQUE_CMD_NM] = self.cmd.torque_expected_Nm
        r[T_MOTOR_ANGLE] = self.inp.motor_angle_rad
        r[T_MOTOR_VEL] = self.inp.motor_vel_rad_s
        r[T_MOTOR_TEMP_C] = self.inp.motor_temp_C
        r[T_MODE] = self.safety.mode
        r[T_FAULTS] = self.safety.faults
        r[T_STRIDE_TIME_S] = g.stride_time_s
        r[T_FRAMES_LOST] = self.frames_lost
        r[T_STANDING] = g.standing
        r[T_GAIT_SOURCE] = g.source
        r[T_CONFIDENCE] = g.confidence
        r[T_WARNINGS] = self.safety.warnings
        r[T_WINDING_TEMP_C] = self.safety.thermal.winding_C
        r[T_TORQUE_LIMIT_NM] = self.safety.torque_limit_Nm
        r[T_PUSHOFF_CMD_NM] = self.cmd.pushoff_Nm
        r[T_ASSIST] = self.safety.assist
        r[T_SPEED_M_S] = self.controller.speed_m_s
        r[T_STANCE_WORK_J_KG] = self.controller.last_work_J_kg
        r[T_SUPPLY_V] = self.inp.supply_V
        r[T_LATE_S] = self.timing[0]
        r[T_READ_S] = self.timing[1]
        r[T_UPDATE_S] = self.timing[2]
        r[T_WRITE_S] = self.timing[3]
        if self.sound_rx_s >= 0.0 and self.safety.last_now_s - self.sound_rx_s <= _SOUND_TIMEOUT_S:
            r[T_SOUND_LOAD] = self.sound_load_N
            r[T_SOUND_GYRO] = self.sound_gyro_rad_s
        else:
            r[T_SOUND_LOAD] = NAN
            r[T_SOUND_GYRO] = NAN

    # ---- read-only views for tools and tests ----
    @property
    def inputs(self):
        return self.inp

    @property
    def command(self):
        return self.cmd

    @property
    def gait(self):
        return self.estimator.state

    @property
    def in_safe_mode(self):
        return self.safety.mode == ANKLE_MODE_SAFE

# cython: language_level=3
"""``ankle replay``'s kernel: a recorded sensor stream through the tick's own sensor side.

Per recorded row, what the tick does before its controller (``Tick._update``): the safety
stage's ``check`` (:class:`~controller.kernels._monitor.Monitor` finds the sensor fault
conditions, :class:`~controller.kernels._safety.Safety` latches them, clears an IMU or load
fault once the sensor has looked healthy for ``safety.sensor_recover_s`` with the foot off the
ground, and sets ``imu_valid`` / ``load_valid``), then ``Estimator.step``.  The same compiled
methods, in one GIL-free loop; nothing of their logic is repeated here.

A row is one tick at its time ``t``, and a sensor cell on it is that sensor's frame arriving then,
as the tick's link fills the inputs (``Tick.ingest_frame``):

- a gyro value: an IMU frame (``shank_gyro_rad_s``, ``imu_rx_s = t``);
- a load value: a load frame, which carries the joint encoder too (``load_N``,
  ``ankle_angle_rad``, ``load_rx_s = t``);
- NaN (an empty cell): that frame did not arrive.  The inputs keep the last frame's values, as
  the tick's do, and its age grows: past ``safety.imu_timeout_s`` / ``safety.load_timeout_s``
  the monitor finds the sensor lost, the fault latches and the estimator falls back (IMU lost:
  load events and time-based phase; load lost: gyro events), as on the device.
- Inf in a frame (or a NaN ankle angle beside a load value) is a non-finite reading: the
  monitor's NaN/Inf check.

What a record does not hold, the monitor is given in the form it already reads as "nothing to
check", so those checks cannot fire:

- accelerations: not logged (the telemetry has no such columns), held at 0.  The stuck-at test
  (10 identical IMU frames in a row) then sees the gyro alone, and the acceleration range test
  never fires.
- frame sequence counters: a record has none, so the counts stay 0 and the stream checks (more
  than 30 frames or 2 out of sequence in 20 ms) see no frames.  Counting one frame per row would
  not do: those bounds are the node's 1 kHz, and a 2 kHz record would look like a second sender.
- driver, supply, tick timing: supervision restarts at every row (``Monitor.begin``), so to the
  monitor the driver was just activated, which counts as heard (no ``motor_stale``), and no tick
  interval has passed (no ``overrun``); no driver reply has arrived (``motor_rx_s`` -1), which
  skips the encoder checks, and its readings are finite zeros (no ``nonfinite_input``); no
  status frame has arrived (``node_status_rx_s`` -1), which leaves the supply unknown (a
  warning, not a fault) and skips the node and low-voltage checks.

So the latched word holds only the ``imu`` and ``load`` bits (``tests/test_replay_device.py``
checks that no other bit ever appears).  ``Safety.step`` does not run: a record has no command.
"""
cimport cython
from libc.math cimport NAN
from libc.stdint cimport uint32_t
from controller.kernels._types cimport Inputs, reset_inputs
from controller.kernels._params cimport require_configured
from controller.kernels._safety cimport Safety
from controller.kernels._estimator cimport Estimator
from controller.kernels._tables cimport tables_as_compiled


def compiled_tables():
    """The generated constants (``_tables.pxd``) as this module was compiled with them."""
    return tables_as_compiled()


# A module compiled from other tables would report faults under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class Replay:
    """The tick's sensor side (safety check, then estimator) over recorded arrays.

    ``configure(params, use_shank=True)`` once, then :meth:`run` over one record.
    """

    def __cinit__(self):
        self.configured = False
        self.safety = Safety()
        self.estimator = Estimator()
        self.reset_inputs()

    def configure(self, params, bint use_shank=True):
        """Fresh kernels set from a validated :class:`controller.params.registry.ParamSet`
        (nothing learned or latched carries over); ``use_shank`` as :meth:`Estimator.configure`."""
        safety = Safety()
        estimator = Estimator()
        safety.configure(params)
        estimator.configure(params, use_shank=use_shank)
        self.safety = safety
        self.estimator = estimator
        self.reset_inputs()
        self.configured = True

    cdef void reset_inputs(self) noexcept nogil:
        reset_inputs(&self.inp)         # as the tick starts: no frame of any kind yet

    cdef void row(self, double t_s, double gyro_rad_s, double load_N, double ankle_angle_rad) noexcept nogil:
        """One recorded row: the frames it holds arrive at ``t_s``, then the tick's sensor side."""
        if gyro_rad_s == gyro_rad_s:            # not NaN: an IMU frame arrived
            self.inp.shank_gyro_rad_s = gyro_rad_s
            self.inp.imu_rx_s = t_s
        if load_N == load_N:                    # a load frame (load cell and joint encoder)
            self.inp.load_N = load_N
            self.inp.ankle_angle_rad = ankle_angle_rad
            self.inp.load_rx_s = t_s
        # no driver, supply or tick timing in a record: supervised as just begun (module docstring)
        self.safety.monitor.begin(t_s)
        self.safety.check(&self.inp, t_s)
        self.estimator.step(&self.inp, t_s)

    def run(self, const double[::1] t_s, const double[::1] shank_gyro_rad_s,
            const double[::1] load_N, const double[::1] ankle_angle_rad,
            double[::1] phase, signed char[::1] heel_strike, signed char[::1] toe_off,
            signed char[::1] walking, signed char[::1] standing=None, uint32_t[::1] faults=None,
            signed char[::1] imu_valid=None, signed char[::1] load_valid=None):
        """Replay one record (arrays of one length, ``t_s`` increasing), writing the outputs per
        row: the estimator's phase (-1 = not walking), events, walking and standing; the latched
        fault word after the safety check (``faults``, ANKLE_FAULT_* bits); whether the
        estimator was let use each sensor (``imu_valid``, ``load_valid``).  NaN in the gyro or
        load array: that frame did not arrive (module docstring).  Optional outputs may be None.

        Successive calls continue one record: nothing is reset between them (the inputs' last
        frames, the monitor's counts, the latch, the estimator's learning all carry on; only
        :meth:`configure` starts afresh), so a record run a block at a time gives exactly what
        one call over all of it gives; ``ankle replay`` streams that way.
        """
        cdef Py_ssize_t n = t_s.shape[0], i
        cdef bint want_standing = standing is not None, want_faults = faults is not None
        cdef bint want_imu = imu_valid is not None, want_load = load_valid is not None
        require_configured(self.configured, "Replay")
        if not (shank_gyro_rad_s.shape[0] == load_N.shape[0] == ankle_angle_rad.shape[0] == n
                and phase.shape[0] == heel_strike.shape[0] == toe_off.shape[0] == walking.shape[0] == n
                and (not want_standing or standing.shape[0] == n)
                and (not want_faults or faults.shape[0] == n)
                and (not want_imu or imu_valid.shape[0] == n)
                and (not want_load or load_valid.shape[0] == n)):
            raise ValueError("all input and output arrays must have the same length")
        with nogil:
            for i in range(n):
                self.row(t_s[i], shank_gyro_rad_s[i], load_N[i], ankle_angle_rad[i])
                phase[i] = self.estimator.state.phase
                heel_strike[i] = self.estimator.state.heel_strike
                toe_off[i] = self.estimator.state.toe_off
                walking[i] = self.estimator.state.walking
                if want_standing:
                    standing[i] = self.estimator.state.standing
                if want_faults:
                    faults[i] = self.safety.faults
                if want_imu:
                    imu_valid[i] = self.inp.imu_valid
                if want_load:
                    load_valid[i] = self.inp.load_valid

# cython: language_level=3
"""Motor thermal protection: a two-node (winding, case) model with I^2 t, and the derating factor.

The driver reports one temperature, a sensor on its case/board, which lags the
winding by tens of seconds; the winding is what burns.  So the winding is
modelled: copper losses I^2 R(T) (R rising 0.393 %/K) heat the winding node,
which leaks into the case node through ``thermal.winding_to_case_K_W``; the case
leaks to ambient.  The case node is pulled toward the reading (first order,
``OBSERVER_TAU_S``), so the model cannot drift far from what is measured.
Independently, an I^2 t integrator (current above the continuous rating, as a
drive's fuse model) catches a long hard push the node model might underrate.

``derate`` is the torque-limit factor the safety stage applies: 1 up to
``thermal.derate_start_degC``, falling linearly to ``DERATE_FLOOR`` at
``thermal.limit_degC`` (the fault latches there), and likewise from 80 % to
100 % of the I^2 t budget.  The floor still leaves the torque a passive
foot needs.
"""
from libc.math cimport isfinite, fabs, NAN
from controller.kernels._params cimport *
from controller.kernels._numeric cimport clamp

# Model design, not site tuning: the observer's pull toward the reading only keeps the model
# honest (any value well below the case's thermal time constant of minutes does), and the floor
# is the torque a passive foot needs at the hard limit (thermal.limit_degC's description says 25 %).
cdef double OBSERVER_TAU_S = 2.0     # pull of the case node toward the reading
cdef double DERATE_FLOOR = 0.25      # torque-limit factor at the hard limit
cdef double I2T_DERATE_FROM = 0.8    # share of the I^2 t budget where derating begins
cdef double MAX_DT_S = 0.1           # longer gaps integrate as this (no jumps after a stall)
# Copper's temperature coefficient of resistance: a property of the winding's metal, not tuning.
cdef double COPPER_ALPHA_PER_K = 0.00393



cdef class ThermalModel:
    """Winding/case temperature estimate, I^2 t and the torque derating factor."""

    def __cinit__(self):
        # No parameter value of its own: every one comes from configure() (the registry).  NaN
        # until then; the model runs only inside a configured Safety (see Safety.configured).
        self.configured = False
        self.r25_ohm = self.kt_Nm_A = NAN
        self.c_wind_J_K = self.r_wind_case_K_W = self.c_case_J_K = self.r_case_amb_K_W = self.ambient_C = NAN
        self.i_cont_A = self.i2t_limit_A2s = NAN
        self.derate_start_C = self.alert_C = self.limit_C = NAN
        self.reset_state()

    def configure(self, params, bint keep_state=False):
        """Take the motor's thermal constants and thresholds from a validated ParamSet.

        ``keep_state``: a live retune; the modelled temperatures stay.
        """
        cdef double p[N_PARAMS]
        fill_vector(params, p)
        with nogil:
            self.configure_from(p, keep_state)

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil:
        """Take the constants from a parameter vector (registry order, validated by its publisher).
        No allocation, no GIL."""
        self.r25_ohm = p[P_THERMAL_WINDING_RESISTANCE_OHM]
        self.kt_Nm_A = p[P_ACTUATOR_TORQUE_CONSTANT_NM_A]
        self.c_wind_J_K = p[P_THERMAL_WINDING_CAPACITY_J_K]
        self.r_wind_case_K_W = p[P_THERMAL_WINDING_TO_CASE_K_W]
        self.c_case_J_K = p[P_THERMAL_CASE_CAPACITY_J_K]
        self.r_case_amb_K_W = p[P_THERMAL_CASE_TO_AMBIENT_K_W]
        self.ambient_C = p[P_THERMAL_AMBIENT_DEGC]
        self.i_cont_A = p[P_THERMAL_CONTINUOUS_CURRENT_A]
        self.i2t_limit_A2s = p[P_THERMAL_I2T_LIMIT_A2S]
        self.derate_start_C = p[P_THERMAL_DERATE_START_DEGC]
        self.alert_C = p[P_THERMAL_ALERT_DEGC]
        self.limit_C = p[P_THERMAL_LIMIT_DEGC]
        self.configured = True
        if not keep_state:
            self.reset_state()

    def settings(self):
        """The values configure() set, by field name (tools and tests)."""
        return {"r25_ohm": self.r25_ohm, "kt_Nm_A": self.kt_Nm_A, "c_wind_J_K": self.c_wind_J_K,
                "r_wind_case_K_W": self.r_wind_case_K_W, "c_case_J_K": self.c_case_J_K,
                "r_case_amb_K_W": self.r_case_amb_K_W, "ambient_C": self.ambient_C,
                "i_cont_A": self.i_cont_A, "i2t_limit_A2s": self.i2t_limit_A2s,
                "derate_start_C": self.derate_start_C, "alert_C": self.alert_C, "limit_C": self.limit_C}

    def reset(self):
        """Forget the state: the next case reading seeds both nodes."""
        self.reset_state()

    cdef void reset_state(self) noexcept nogil:
        self.winding_C = self.ambient_C
        self.case_C = self.ambient_C
        self.i2t_A2s = 0.0
        self.derate = 1.0
        self.seeded = False

    cdef double heat_fraction(self) noexcept nogil:
        """How far toward the hard limit: 1.0 = at the winding limit or the I^2 t budget."""
        cdef double by_temp = ((self.winding_C - self.derate_start_C)
                               / (self.limit_C - self.derate_start_C))
        cdef double by_i2t = ((self.i2t_A2s / self.i2t_limit_A2s - I2T_DERATE_FROM)
                              / (1.0 - I2T_DERATE_FROM))
        return by_temp if by_temp > by_i2t else by_i2t

    cdef void step(self, double current_A, double case_reading_C, double dt_s) noexcept nogil:
        """Advance by ``dt_s`` with the motor current and the driver's case reading (NaN = none)."""
        cdef double r, p_W, q_wc_W, q_ca_W
        if not (dt_s > 0.0):
            return
        if dt_s > MAX_DT_S:
            dt_s = MAX_DT_S
        if not isfinite(current_A):
            current_A = 0.0          # a NaN current is a separate fault; do not poison the model
        if isfinite(case_reading_C) and not self.seeded:
            # At boot the motor may be warm: assume winding = case (the reading is all we know).
            self.winding_C = case_reading_C
            self.case_C = case_reading_C
            self.seeded = True
        r = self.r25_ohm * (1.0 + COPPER_ALPHA_PER_K * (self.winding_C - 25.0))
        p_W = current_A * current_A * r
        q_wc_W = (self.winding_C - self.case_C) / self.r_wind_case_K_W
        q_ca_W = (self.case_C - self.ambient_C) / self.r_case_amb_K_W
        self.winding_C += (p_W - q_wc_W) / self.c_wind_J_K * dt_s
        self.case_C += (q_wc_W - q_ca_W) / self.c_case_J_K * dt_s
        if isfinite(case_reading_C):
            self.case_C += (case_reading_C - self.case_C) * clamp(dt_s / OBSERVER_TAU_S, 0.0, 1.0)
            if self.winding_C < self.case_C:
                self.winding_C = self.case_C     # the winding is never cooler than its case
        self.i2t_A2s += (current_A * current_A - self.i_cont_A * self.i_cont_A) * dt_s
        if self.i2t_A2s < 0.0:
            self.i2t_A2s = 0.0
        self.derate = 1.0 - (1.0 - DERATE_FLOOR) * clamp(self.heat_fraction(), 0.0, 1.0)

    def advance(self, double current_A, double case_reading_C, double dt_s):
        """One model step from Python (tools and tests; the tick calls ``step``)."""
        require_configured(self.configured, "ThermalModel")
        self.step(current_A, case_reading_C, dt_s)

    def current_for_torque(self, double ankle_torque_Nm, double ratio, double efficiency):
        """Motor current [A] that gives ``ankle_torque_Nm`` through the transmission."""
        return fabs(ankle_torque_Nm) / (ratio * efficiency * self.kt_Nm_A)

    @property
    def at_limit(self):
        """True once the winding model or the I^2 t budget reached the hard limit."""
        return self.heat_fraction() >= 1.0

    @property
    def alert(self):
        """True while the winding model is above the alert threshold."""
        return self.winding_C >= self.alert_C

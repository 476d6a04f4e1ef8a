# cython: language_level=3
"""Push-off controller (first version): stance impedance, late-stance push-off, swing hold.

In stance the ankle is a spring-damper about ``stance.equilibrium_rad`` (it
resists dorsiflexion as the body rolls over the foot) plus, in late stance, a
push-off torque: a smooth raised-cosine bump from ``pushoff.start_phase`` up to
``pushoff.peak_torque_Nm_kg`` x body mass at ``peak_phase`` and back to zero
at ``end_phase``; from ``start_phase`` on the spring-damper may only push
(plantar-flexor), never brake the push-off.  In swing the foot is held at ``swing.target_rad`` for toe
clearance.  Loaded but not walking (standing, or no phase yet) gives the
stance spring alone: a passive foot.  The output is a torque command; the safety stage
bounds it before anything reaches a driver.
"""
from libc.math cimport cos, M_PI
from controller._types cimport Inputs, GaitState, Command


cdef class PushoffController:
    """Per-tick controller law.  ``step`` is called every tick: no allocation, no blocking."""

    def __cinit__(self):
        self.mass_kg = 80.0
        self.stance_k_Nm_rad = 240.0
        self.stance_b_Nms_rad = 1.6
        self.stance_eq_rad = 0.0
        self.pushoff_peak_Nm = 72.0
        self.pushoff_start = 0.30
        self.pushoff_peak = 0.50
        self.pushoff_end = 0.62
        self.swing_target_rad = 0.05
        self.swing_k_Nm_rad = 40.0
        self.swing_b_Nms_rad = 1.5

    def configure(self, params):
        """Take gains from a validated :class:`controller.params.ParamSet` (not in the tick)."""
        m = params["wearer.mass_kg"]
        self.mass_kg = m
        self.stance_k_Nm_rad = params["stance.stiffness_Nm_rad_kg"] * m
        self.stance_b_Nms_rad = params["stance.damping_Nms_rad_kg"] * m
        self.stance_eq_rad = params["stance.equilibrium_rad"]
        self.pushoff_peak_Nm = params["pushoff.peak_torque_Nm_kg"] * m
        self.pushoff_start = params["pushoff.start_phase"]
        self.pushoff_peak = params["pushoff.peak_phase"]
        self.pushoff_end = params["pushoff.end_phase"]
        self.swing_target_rad = params["swing.target_rad"]
        self.swing_k_Nm_rad = params["swing.stiffness_Nm_rad"]
        self.swing_b_Nms_rad = params["swing.damping_Nms_rad"]

    cdef double pushoff_torque_Nm(self, double phase) noexcept nogil:
        cdef double x
        if phase <= self.pushoff_start or phase >= self.pushoff_end:
            return 0.0
        if phase < self.pushoff_peak:
            x = (phase - self.pushoff_start) / (self.pushoff_peak - self.pushoff_start)
        else:
            x = (self.pushoff_end - phase) / (self.pushoff_end - self.pushoff_peak)
        return self.pushoff_peak_Nm * 0.5 * (1.0 - cos(M_PI * x))

    cdef void step(self, const GaitState* gait, const Inputs* inp, Command* out) noexcept nogil:
        cdef double angle = inp.motor_angle_rad
        cdef double vel = inp.motor_vel_rad_s
        cdef double torque
        if gait.stance:
            torque = self.stance_k_Nm_rad * (angle - self.stance_eq_rad) + self.stance_b_Nms_rad * vel
            if gait.walking and gait.phase >= self.pushoff_start:
                # From push-off on the spring may only push: a dorsiflexor pull while the ankle
                # plantarflexes would brake the push-off (about -0.1 J/kg per stride).
                if torque < 0.0:
                    torque = 0.0
                torque += self.pushoff_torque_Nm(gait.phase)
        else:
            torque = self.swing_k_Nm_rad * (angle - self.swing_target_rad) + self.swing_b_Nms_rad * vel
        out.torque_ff_Nm = torque
        out.p_des_rad = 0.0
        out.v_des_rad_s = 0.0
        out.kp_Nm_rad = 0.0
        out.kd_Nms_rad = 0.0
        out.torque_expected_Nm = torque

    def pushoff_profile(self, double phase):
        """Push-off torque [N*m] at ``phase`` (tools and tests)."""
        return self.pushoff_torque_Nm(phase)

    def command_for(self, dict gait, dict inputs):
        """The controller's command for plain-dict gait state and inputs (tools and tests)."""
        cdef GaitState g = gait
        cdef Inputs i = inputs
        cdef Command c
        with nogil:
            self.step(&g, &i, &c)
        return c

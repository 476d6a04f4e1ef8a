cimport cython


@cython.final
cdef class ThermalModel:
    # parameters
    cdef double r25_ohm, kt_Nm_A
    cdef double c_wind_J_K, r_wind_case_K_W, c_case_J_K, r_case_amb_K_W, ambient_C
    cdef double i_cont_A, i2t_limit_A2s
    cdef double derate_start_C, alert_C, limit_C
    # state
    cdef readonly double winding_C       # modelled winding temperature
    cdef readonly double case_C          # modelled case temperature (pulled toward the reading)
    cdef readonly double i2t_A2s         # accumulated I^2 t above the continuous rating
    cdef readonly double derate          # torque-limit factor, derate_floor..1
    cdef bint seeded                     # a case reading has set the initial temperatures

    cdef readonly bint configured        # configure() has set every parameter

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil
    cdef void reset_state(self) noexcept nogil
    cdef void step(self, double current_A, double case_reading_C, double dt_s) noexcept nogil
    cdef double heat_fraction(self) noexcept nogil

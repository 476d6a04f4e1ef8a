cimport cython
from controller.kernels._types cimport Inputs
from controller.kernels._safety cimport Safety
from controller.kernels._estimator cimport Estimator


@cython.final
cdef class Replay:
    cdef readonly Safety safety          # its Monitor finds the sensor faults, it latches them
    cdef readonly Estimator estimator
    cdef Inputs inp                      # what the tick's inputs hold: the last frame of each sensor
    cdef readonly bint configured

    cdef void reset_inputs(self) noexcept nogil
    cdef void row(self, double t_s, double gyro_rad_s, double load_N, double ankle_angle_rad) noexcept nogil

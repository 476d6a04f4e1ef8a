# A simulated motor drive on the bus (implemented in _simdrive.pyx): the protocol side of the
# drive, over the plant's motor (sim/_plant.pxd, its drive API).  sim._device_io.DeviceIO hands it
# every host frame and puts on the link what it sends.  Subclass per protocol: AkMitSimDrive
# here; sim/_odrive_sim.pyx, sim/_cia402_sim.pyx.
from hal._link cimport CanFrame
from sim._plant cimport AnklePlant

cdef enum:
    SIM_DRIVE_MAX_OUT = 16      # frames one respond() may send


cdef class SimDrive:
    cdef readonly AnklePlant plant
    cdef readonly str name
    # One host frame (standard or remote; error and extended frames never reach it) at simulated
    # time now_s, BEFORE the plant advances to now_s.  Returns how many replies it makes due (>= 0).
    cdef int receive(self, const CanFrame* f, double now_s) noexcept nogil
    # After the plant reached now_s: the frames the drive sends now, into out[0 .. max_out): the
    # replies to ``due`` requests and, with ``cyclic``, its periodic frames due at now_s.
    cdef int respond(self, int due, double now_s, bint cyclic, CanFrame* out, int max_out) noexcept nogil


cdef class AkMitSimDrive(SimDrive):
    cdef readonly unsigned int reply_id

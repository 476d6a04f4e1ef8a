# A CAN link the tick reads and writes without the GIL (implemented in _link.pyx).

cdef enum:
    LINK_EXTENDED = 1
    LINK_REMOTE = 2
    LINK_ERROR = 4

ctypedef struct CanFrame:
    unsigned int can_id         # 11-bit or 29-bit identifier
    unsigned char dlc           # 0..8
    unsigned char flags         # LINK_EXTENDED | LINK_REMOTE | LINK_ERROR
    unsigned char data[8]

cdef class FrameLink:
    cdef readonly long long frames_in, frames_out, send_failures, bad_input
    cdef readonly int last_errno
    # non-zero while the link is lost: the errno that said so (the socketcand server closed the
    # connection, the CAN interface went down); 0 while it works
    cdef readonly int down_errno
    cdef int fd
    cdef int recv(self, CanFrame* f) noexcept nogil
    cdef int send(self, const CanFrame* f) noexcept nogil

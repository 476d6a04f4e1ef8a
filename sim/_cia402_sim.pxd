# The simulated CiA 402 servo drive (implemented in _cia402_sim.pyx): NMT, an SDO server over the
# object dictionary of hal/data/ankle_drive.eds, PDOs as mapped over SDO, SYNC-driven TPDOs, the
# CiA 402 state machine, heartbeat producer and consumer, EMCY.
from hal._link cimport CanFrame
from sim._simdrive cimport SimDrive

cdef enum:
    SIM402_MAX_OD = 192         # object dictionary entries (index, sub-index)
    SIM402_MAX_PDO = 4          # RPDOs and TPDOs each
    SIM402_MAX_MAPPED = 8       # objects per PDO


cdef class Cia402SimDrive(SimDrive):
    # the object dictionary: key = index << 8 | sub-index
    cdef int n_od
    cdef unsigned int od_key[SIM402_MAX_OD]
    cdef unsigned char od_size[SIM402_MAX_OD]
    cdef unsigned char od_flags[SIM402_MAX_OD]
    cdef long long od_value[SIM402_MAX_OD]
    cdef long long od_default[SIM402_MAX_OD]
    # strings (VISIBLE_STRING, od_size 0): od_value = offset in strings, od_default = length
    cdef unsigned char strings[512]
    # the segmented upload in progress (-1: none)
    cdef int seg_slot, seg_pos, seg_toggle
    # slots of the objects the drive itself reads or writes (-1: not in the EDS)
    cdef int s_controlword, s_statusword, s_mode, s_mode_display, s_position, s_velocity
    cdef int s_target, s_max_torque, s_rated, s_torque_actual, s_dc_link, s_temperature
    cdef int s_error_code, s_error_register, s_consumer, s_producer, s_abort_option
    cdef int s_gear_motor, s_gear_shaft, s_enc_inc, s_enc_rev
    # PDOs: the slot of sub-index 1 (COB-ID) and 2 (type) of each communication record, of
    # sub-index 0 of each mapping record, the mapping in force (slots), received RPDO data
    cdef int n_rpdo, n_tpdo
    cdef int rpdo_comm[SIM402_MAX_PDO]
    cdef int rpdo_map[SIM402_MAX_PDO]
    cdef int rpdo_n[SIM402_MAX_PDO]
    cdef int rpdo_slots[SIM402_MAX_PDO * SIM402_MAX_MAPPED]
    cdef int rpdo_len[SIM402_MAX_PDO]
    cdef unsigned char rpdo_buf[SIM402_MAX_PDO * 8]
    cdef bint rpdo_new[SIM402_MAX_PDO]
    cdef int tpdo_comm[SIM402_MAX_PDO]
    cdef int tpdo_map[SIM402_MAX_PDO]
    cdef int tpdo_n[SIM402_MAX_PDO]
    cdef int tpdo_slots[SIM402_MAX_PDO * SIM402_MAX_MAPPED]
    cdef int tpdo_len[SIM402_MAX_PDO]
    cdef int tpdo_count[SIM402_MAX_PDO]
    # state
    cdef readonly int node_id
    cdef readonly int nmt_state
    cdef readonly int state              # CiA 402 state (the DS_* constants of _cia402_sim.pyx)
    cdef readonly unsigned int active_error
    cdef readonly long long syncs, emcys_sent
    cdef unsigned int last_cw
    cdef double hb_next_s, consumer_last_s
    cdef bint consumer_started
    cdef int syncs_pending
    cdef CanFrame pending[16]
    cdef int n_pending

    cdef int _find(self, unsigned int index, unsigned int sub) noexcept nogil
    cdef void _queue(self, unsigned int can_id, const unsigned char* data, int dlc) noexcept nogil
    cdef void _emcy(self, unsigned int code) noexcept nogil
    cdef void _set_state(self, int state, double now_s) noexcept nogil
    cdef void _fault(self, unsigned int code, double now_s) noexcept nogil
    cdef void _controlword(self, unsigned int cw, double now_s) noexcept nogil
    cdef unsigned int _fault_cause(self) noexcept nogil
    cdef void _check(self, double now_s) noexcept nogil
    cdef unsigned int _sdo_write(self, int slot, unsigned int index, unsigned int sub, long long v, int n, double now_s) noexcept nogil
    cdef void _sdo(self, const unsigned char* d, int dlc, double now_s) noexcept nogil
    cdef bint _remap(self, bint tx, int k) noexcept nogil
    cdef void _nmt(self, int cs, double now_s) noexcept nogil
    cdef void _apply_rpdo(self, int k, double now_s) noexcept nogil
    cdef void _update_readings(self) noexcept nogil
    cdef int _tpdo(self, int k, CanFrame* f) noexcept nogil
    cdef void _reset(self, bint communication_only) noexcept nogil

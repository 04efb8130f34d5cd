from ext.sidecar._admission_c cimport admit, blocked_bytes
from ext.sidecar._heads_c cimport request_field_kind

cdef class ClientConnection:
    cdef public object proxy
    cdef public object loop
    cdef public object transport
    cdef public str peer_ip
    cdef public bytes peer_ip_bytes
    cdef public bytes forwarded_for
    cdef public bint closed
    cdef public bint closing
    cdef public bint write_paused
    cdef public object current
    cdef public object pending
    cdef public int batch_depth
    cdef public list out
    cdef object _exchange_type
    cdef object _reading_ex
    cdef set _pauses
    cdef object _parser
    cdef object _deadline
    cdef object _timer
    cdef bint _in_head
    cdef bint _head_timer
    cdef bytes _url
    cdef list _parts
    cdef Py_ssize_t _head_bytes
    cdef Py_ssize_t _max_head
    cdef Py_ssize_t _body_bytes
    cdef object _host
    cdef object _extra
    cdef _feed(self, data)
    cdef _parse_failed(self, exc, data)
    cdef _special_field(self, int kind, bytes name, bytes value)
    cdef _refuse(self, str resource, error, bint keep_alive)
    cdef str _framing(self, extra)
    cpdef exchange_done(self, ex)
    cdef _reject(self, int status, str word, str detail)
    cdef _arm(self, double timeout)
    cpdef write(self, data)
    cpdef flush(self)
    cpdef abort(self)
    cpdef pause_reading(self, str reason)
    cpdef resume_reading(self, str reason)
    cpdef bint close_if_idle(self)

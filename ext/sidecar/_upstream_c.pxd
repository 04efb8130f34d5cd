cimport cython

from ext.sidecar._heads_c cimport response_fields
from ext.sidecar._protocol_c cimport ClientConnection


cdef class UpstreamConnection:
    cdef public UpstreamPool pool
    cdef public object upstream
    cdef public object transport
    cdef public object exchange
    cdef public bint closed
    cdef public bint reused
    cdef public bint head_only
    cdef object _parser
    cdef bytes _raw
    cdef bint _collect
    cdef bint _interim
    @cython.locals(client=ClientConnection)
    cpdef data_received(self, data)
    cdef _finish_head_only(self)
    cdef _fail(self, error)
    cpdef write(self, data)
    cpdef close(self)
    cpdef abort(self)


cdef class UpstreamPool:
    cdef public Py_ssize_t pool_size
    cdef public double connect_timeout
    cdef dict _idle
    cdef public Py_ssize_t open_connections
    cdef public Py_ssize_t connects_total
    cdef public Py_ssize_t reuses_total
    cpdef UpstreamConnection take_idle(self, upstream)
    cpdef release(self, UpstreamConnection conn)
    cpdef forget(self, UpstreamConnection conn)


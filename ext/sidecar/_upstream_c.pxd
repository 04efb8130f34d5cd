cimport cython

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


cpdef tuple response_fields(bytes head, bint kept_alive)
@cython.locals(
    n=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, k=Py_ssize_t, start=Py_ssize_t,
    piece=Py_ssize_t, kind=int, has_length=bint, chunked=bint, kept=list,
)
cpdef tuple scan_fields(bytes head, bint kept_alive)
cdef int _field_kind(bytes head, Py_ssize_t i, Py_ssize_t n)
@cython.locals(k=Py_ssize_t)
cdef bint _name_is(bytes head, Py_ssize_t i, bytes name)
@cython.locals(start=Py_ssize_t)
cdef tuple _fields_by_line(bytes head, bint kept_alive)

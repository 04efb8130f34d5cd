from ext.sidecar._admission_c cimport admit, blocked_bytes, find_header
from ext.sidecar._protocol_c cimport ClientConnection
from ext.sidecar._upstream_c cimport UpstreamConnection, UpstreamPool


cdef class Exchange:
    cdef public ClientConnection client
    cdef public bytes method
    cdef public bytes target
    cdef public list parts
    cdef public Py_ssize_t n_parts
    cdef public str version
    cdef public bint keep_alive
    cdef public str framing
    cdef public object host
    cdef public object extra
    cdef public bint expect
    cdef public bint body_done
    cdef public bint discard
    cdef public bint head_sent
    cdef public bint close_after
    cdef public str resource
    cdef list _buffer
    cdef Py_ssize_t _buffered
    cdef UpstreamConnection _conn
    cdef object _entry
    cdef bint _finished
    cdef object _upstream
    cdef object _started_on
    cdef int _attempt
    cdef double _started
    cdef double _idle_since
    cdef long _io
    cdef long _seen_io
    cdef bint _sent_body
    cdef bint _out_chunked
    cdef bint _resp_eof
    cdef int _status
    cpdef request_body(self, data)
    cpdef request_end(self)
    cpdef start(self)
    cpdef admitted(self, entry)
    cdef _guard_failed(self)
    cdef _blocked(self, err)
    cdef _entered(self, entry)
    cpdef header(self, str lname)
    cdef _dispatch(self)
    cdef _attach(self, UpstreamConnection conn)
    cdef bytes _request_head(self, UpstreamConnection conn)
    cpdef response_head(self, int status, bytes fields, bint has_length, bint chunked)
    cpdef response_body(self, data)
    cpdef response_end(self, UpstreamConnection conn, bint reusable=*)
    cpdef upstream_lost(self, UpstreamConnection conn, exc)
    cpdef upstream_failed(self, error)
    cpdef client_lost(self)
    cpdef client_write_paused(self, bint paused)
    cpdef check_timeout(self, double now, double timeout)
    cdef bint _must_close(self)
    cdef _answer(self, bytes response)
    cdef _error(self, int status, str word, str detail)
    cdef _release_balancer(self, bint failed)
    cdef _finish(self, error)

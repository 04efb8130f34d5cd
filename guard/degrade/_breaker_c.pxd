cimport cython

from guard._chain_c cimport Check, Entry, block

cdef int CLOSED, OPEN, HALF_OPEN, SLOW_RATIO, ERROR_RATIO, ERROR_COUNT
cdef long long _NO_BUCKET


@cython.final
cdef class Breaker:
    cdef public object rule
    cdef public str resource
    cdef public int kind
    cdef public double threshold
    cdef public long long max_rt_ms
    cdef public long long recovery_ms
    cdef public long long min_requests
    cdef public long long interval_ms
    cdef public list listeners
    cdef public int state
    cdef public long long next_retry
    cdef public long long bucket_start
    cdef public long long total
    cdef public long long bad
    cpdef void roll(self, long long now)
    cpdef bint try_probe(self, long long now)
    cpdef void revert_probe(self)
    cpdef void on_request(self, long long now, long long rt, bint error, bint probe)
    cpdef void set_state(self, int new, value, long long now)
    cpdef void notify(self, int old, int new, value)
    cpdef retry_after(self, long long now)


@cython.final
cdef class DegradeCheck(Check):
    cdef public list breakers

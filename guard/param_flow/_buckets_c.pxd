cimport cython

from guard._chain_c cimport Check, Entry, block, wait

cdef double BLOCK


@cython.final
cdef class ValueBucket:
    cdef public long long rest
    cdef public long long last


@cython.final
cdef class ParamRuleState:
    cdef public object rule
    cdef public Py_ssize_t param_index
    cdef public long long count
    cdef public long long burst
    cdef public long long duration_sec
    cdef public long long duration_ms
    cdef public bint throttle
    cdef public long long max_queue_ms
    cdef public dict items
    cdef public bint has_items
    cdef public Py_ssize_t capacity
    cdef public object buckets
    cdef public object last_key
    cdef public object last_bucket
    cpdef bucket(self, value)
    cpdef void add(self, value, long long rest, long long last)
    cpdef double pass_value(self, value, long long acquire, long long now)
    cpdef double space(self, value, long long tokens, long long acquire, long long now)
    cpdef double retry_after(self, value, long long now)


@cython.final
cdef class ParamFlowCheck(Check):
    cdef public list states
    cdef double one(self, ParamRuleState state, value, long long acquire, long long now)
    cdef refuse(self, Entry e, ParamRuleState state, value, long long now)

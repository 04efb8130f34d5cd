cimport cython

from guard._chain_c cimport Check, Entry, Resource, block, wait
from guard.stat._window_c cimport StatNode

# Verdict values, limit_app kinds and strategies as C constants (the .py assigns the same
# values): as Python globals every comparison on the check path was a dict lookup.
cdef double BLOCK, _NEVER
cdef Py_ssize_t PASS
cdef int LIMIT_DEFAULT, LIMIT_OTHER, LIMIT_ORIGIN, DIRECT, RELATE, CHAIN


cdef class Controller:
    cpdef double can_pass(self, StatNode node, long long acquire, long long now)
    cpdef retry_after(self, StatNode node, long long now)


cdef class DefaultController(Controller):
    cdef public double count
    cdef public bint concurrency
    cpdef double can_pass(self, StatNode node, long long acquire, long long now)
    cpdef retry_after(self, StatNode node, long long now)


cdef class WarmUpController(Controller):
    cdef public double count
    cdef public long long cold_factor
    cdef public long long warning_token
    cdef public long long max_token
    cdef public double slope
    cdef public long long stored_tokens
    cdef public long long last_filled
    cdef public bint started
    cpdef void sync_token(self, long long previous_qps, long long now)
    cpdef double allowed_qps(self)
    cpdef double can_pass(self, StatNode node, long long acquire, long long now)
    cpdef retry_after(self, StatNode node, long long now)


cdef class RateLimiterController(Controller):
    cdef public double count
    cdef public double max_queue_ms
    cdef public double latest_passed
    cdef public double refused_at
    cpdef double space(self, double cost, long long now)
    cpdef double can_pass(self, StatNode node, long long acquire, long long now)
    cpdef retry_after(self, StatNode node, long long now)


cdef class WarmUpRateLimiterController(WarmUpController):
    cdef public RateLimiterController limiter


@cython.final
cdef class FlowRuleState:
    cdef public object rule
    cdef public Controller controller
    cdef public int limit
    cdef public str limit_app
    cdef public int strategy
    cdef public object ref_resource
    cdef public object ref_name
    cdef public frozenset named_origins
    cdef select_node(self, Entry e)
    cdef reference_node(self, Entry e)


cdef class FlowCheck(Check):
    cdef public list states


cdef double _time_to_admit(StatNode node, long long now, double allowed)

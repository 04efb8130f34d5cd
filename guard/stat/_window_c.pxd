cimport cython


# Field offsets and limits as C constants (the .py assigns the same values).
cdef Py_ssize_t PASS, BLOCK, SUCCESS, EXCEPTION, RT, MIN_RT, FIELDS
cdef long long MAX_RT_MS, _EMPTY


# The writers and the readers a check runs on every entry are noexcept: they index typed
# arrays (no bounds checks) and divide by positive constants, so nothing can raise, and a
# noexcept call skips the PyErr_Occurred test after it.
@cython.final
cdef class LeapArray:
    cdef public long long sample_count
    cdef public long long interval_ms
    cdef public long long bucket_ms
    cdef long long[::1] starts
    cdef long long[::1] values
    cdef long long cur_start
    cdef Py_ssize_t cur_idx

    cpdef Py_ssize_t current(self, long long now) noexcept
    cpdef void add(self, long long now, Py_ssize_t field, long long count) noexcept
    cpdef void add_rt(self, long long now, long long rt, long long count) noexcept
    cpdef long long sum(self, long long now, Py_ssize_t field) noexcept
    cpdef long long min_rt(self, long long now)
    cpdef long long max_bucket(self, long long now, Py_ssize_t field)
    cpdef long long previous(self, long long now, Py_ssize_t field)
    cpdef long long time_to_free(self, long long now, Py_ssize_t field, long long amount)
    cpdef long long window_end(self, long long now)


cdef long long _floor_to(long long t, long long step) noexcept
cdef Py_ssize_t _bucket_index(long long start, long long bucket_ms, long long sample_count) noexcept


@cython.final
cdef class StatNode:
    cdef public LeapArray second
    cdef public LeapArray minute
    cdef public long long concurrency

    cpdef void add_pass(self, long long now, long long count) noexcept
    cpdef void add_block(self, long long now, long long count) noexcept
    cpdef void add_success(self, long long now, long long rt, long long count) noexcept
    cpdef void add_exception(self, long long now, long long count) noexcept
    cpdef long long pass_count(self, long long now) noexcept
    cpdef double pass_qps(self, long long now) noexcept
    cpdef double block_qps(self, long long now)
    cpdef double success_qps(self, long long now)
    cpdef double exception_qps(self, long long now)
    cpdef double avg_rt(self, long long now)
    cpdef long long min_rt(self, long long now)
    cpdef double max_success_qps(self, long long now)
    cpdef long long previous_pass_qps(self, long long now)
    cpdef long long total(self, long long now, Py_ssize_t field)

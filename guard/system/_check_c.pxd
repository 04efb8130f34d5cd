cimport cython

from guard._chain_c cimport Check, Core, Entry, block
from guard.stat._window_c cimport StatNode


@cython.final
cdef class SystemStatus:
    cdef public double cpu
    cdef public double load


@cython.final
cdef class SystemCheck(Check):
    cdef public object rule
    cdef public SystemStatus status
    cdef public double max_qps
    cdef public double max_concurrency
    cdef public double max_avg_rt
    cdef public double max_load
    cdef public double max_cpu
    cpdef refuse(self, Entry e, str limit)

from guard._chain_c cimport Core, Entry, Resource, new_entry


cdef class GuardedFunction:
    cdef dict __dict__
    cdef public object func
    cdef public Core core
    cdef public Resource res
    cdef public bint inbound
    cdef public object block_handler
    cdef public object fallback
    cdef public tuple trace_types
    cdef public tuple ignore_types
    cdef public object origin_fn
    cdef public object origin
    cdef Entry _entry(self, tuple args, dict kwargs)
    cdef _blocked(self, error, tuple args, dict kwargs)


cdef class AsyncGuardedFunction(GuardedFunction):
    pass

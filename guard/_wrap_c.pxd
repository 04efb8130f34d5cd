from cpython.object cimport PyObject

from guard._chain_c cimport Core, Entry, Resource, new_entry


cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf, object kwnames)


cdef tuple ERROR_KWNAMES


cdef inline object call_with_error(object handler, tuple args, object error):
    """``handler(*args, error=error)`` as one vectorcall: no keyword dict is built and then
    unpacked again (a refused call's answer; see _wrap_py.py for the pure twin)."""
    cdef PyObject *stack[9]
    cdef Py_ssize_t n = len(args), i
    if n > 8:
        return handler(*args, error=error)
    for i in range(n):
        stack[i] = <PyObject *>args[i]
    stack[n] = <PyObject *>error
    return PyObject_Vectorcall(handler, stack, n, ERROR_KWNAMES)


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

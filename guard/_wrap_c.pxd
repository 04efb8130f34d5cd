from cpython.object cimport PyObject, Py_TYPE
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM

from guard._chain_c cimport Core, Entry, Resource, new_entry


cdef extern from "Python.h":
    ctypedef PyObject *(*vectorcallfunc)(PyObject *, PyObject *const *, size_t, PyObject *)
    # The two type fields that switch vectorcall on (PEP 590).
    ctypedef struct VectorcallType "PyTypeObject":
        Py_ssize_t tp_vectorcall_offset
        unsigned long tp_flags
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)
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
    cdef vectorcallfunc vectorcall  # read by CPython through tp_vectorcall_offset
    cdef Entry _entry(self, tuple args, dict kwargs)
    cdef _blocked(self, error, tuple args, dict kwargs)
    cdef _call(self, tuple args, dict kwargs)


cdef class AsyncGuardedFunction(GuardedFunction):
    pass


cdef inline object guarded_vectorcall(
    object callable, PyObject **stack, size_t nargsf, PyObject *kwnames
):
    """A call of a ``GuardedFunction`` by vectorcall: the arguments as a C array, keyword
    names apart. Builds the positional tuple the entry keeps, and a dict only for keywords."""
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf), i
    cdef tuple args = PyTuple_New(n)
    cdef dict kwargs = None
    for i in range(n):
        Py_INCREF(<object>stack[i])  # PyTuple_SET_ITEM steals the reference
        PyTuple_SET_ITEM(args, i, <object>stack[i])
    if kwnames is not NULL and PyTuple_GET_SIZE(<object>kwnames) > 0:
        kwargs = {}
        for i in range(PyTuple_GET_SIZE(<object>kwnames)):
            kwargs[<object>PyTuple_GET_ITEM(<object>kwnames, i)] = <object>stack[n + i]
    return (<GuardedFunction>callable)._call(args, kwargs)


cdef inline void enable_vectorcall(GuardedFunction fn):
    """Let CPython call ``fn`` by vectorcall. Only the exact type gets the flag: a subclass
    (the async wrapper) keeps its own ``__call__``."""
    cdef VectorcallType *tp = <VectorcallType *>Py_TYPE(fn)
    fn.vectorcall = <vectorcallfunc>guarded_vectorcall
    if type(fn) is GuardedFunction and not (tp.tp_flags & Py_TPFLAGS_HAVE_VECTORCALL):
        tp.tp_vectorcall_offset = <char *>&fn.vectorcall - <char *><PyObject *>fn
        tp.tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL

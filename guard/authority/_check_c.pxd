cimport cython

from guard._chain_c cimport Check, Entry, block


@cython.final
cdef class OriginList:
    cdef public object rule
    cdef public frozenset origins
    cdef public bint white
    cpdef bint admits(self, origin)


@cython.final
cdef class AuthorityCheck(Check):
    cdef public list lists

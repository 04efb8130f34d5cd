cimport cython


cdef dict _BY_LENGTH


@cython.locals(candidates=tuple, known=bytes, kind=int)
cpdef int request_field_kind(bytes name)
cpdef tuple response_fields(bytes head, bint kept_alive)
@cython.locals(
    n=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, k=Py_ssize_t, start=Py_ssize_t,
    piece=Py_ssize_t, kind=int, has_length=bint, chunked=bint, kept=list,
)
cpdef tuple scan_fields(bytes head, bint kept_alive)
cdef bint _names_nothing(bytes head, Py_ssize_t i, Py_ssize_t j)
cdef int _field_kind(bytes head, Py_ssize_t i, Py_ssize_t n)
@cython.locals(k=Py_ssize_t)
cdef bint name_is(bytes head, Py_ssize_t i, bytes name)
@cython.locals(start=Py_ssize_t)
cdef tuple _fields_by_line(bytes head, bint kept_alive)

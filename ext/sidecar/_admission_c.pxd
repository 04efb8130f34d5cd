cpdef bytes blocked_bytes(str reason, str resource, retry_after, bint close)
cpdef tuple admit(client, bytes method, bytes target, list parts, Py_ssize_t n_parts, extra)
cpdef tuple route_args(client, tuple params, bytes query, list parts, Py_ssize_t n_parts, extra)
cpdef find_header(list parts, Py_ssize_t n_parts, extra, str lname)

# C helper for the compiled wheel (cimported by _wheel_py.py only when compiled): hand the
# payloads of fired slots to the caller without touching the payload objects.
cdef extern from *:
    """
    /* A new list of the payloads of slots ents[i] & 0xFFFFFFFF. Each reference moves from the
       slot list to the new list (the slot gets None), so no payload's refcount is written: a
       payload is then never loaded, and the slot loads, which miss the cache, all overlap. */
    static PyObject *timewheel_take_payloads(PyObject *spay, const long long *ents,
                                             Py_ssize_t m) {
        PyObject *out = PyList_New(m);
        if (out == NULL) return NULL;
        PyObject **items = ((PyListObject *)spay)->ob_item;
        for (Py_ssize_t i = 0; i < m; i++) {
            Py_ssize_t s = (Py_ssize_t)(ents[i] & 0xFFFFFFFF);
            PyList_SET_ITEM(out, i, items[s]);
            items[s] = Py_None;
        }
        for (Py_ssize_t i = 0; i < m; i++) Py_INCREF(Py_None);
        return out;
    }
    """
    list take_payloads "timewheel_take_payloads" (list spay, const long long *ents, Py_ssize_t m)

cimport cython
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from guard.stat._window_c cimport StatNode

# Entry states and the default trace types as C constants (the .py assigns the same values):
# as Python globals each test on the entry path cost a dict lookup and an int object.
cdef int NEW, ENTERED, BLOCKED, EXITED
cdef tuple _TRACE_ALL


cdef extern from *:
    """
    /* Freelists for Entry and Verdict, as Cython's @freelist would give (Cython drops that
       directive when a .pxd augments a pure-Python module). An entry is built and freed
       on every guarded call; reusing its memory skips malloc, free and the GC's allocation
       count. One pool per type (sizes differ). Runs under the GIL, like tp_alloc/tp_free.
       Only for GC types of fixed size with no subclasses (final cdef classes). */
    #define GUARD_POOL(name)                                                        \
    static PyObject *name##_slots[64];                                              \
    static int name##_len = 0;                                                      \
    static CYTHON_UNUSED PyObject *name##_alloc(PyTypeObject *t, Py_ssize_t nitems) { \
        if (name##_len > 0 && nitems == 0) {                                        \
            PyObject *o = name##_slots[--name##_len];                               \
            memset(o, 0, (size_t)t->tp_basicsize);                                  \
            (void)PyObject_Init(o, t);                                              \
            PyObject_GC_Track(o);                                                   \
            return o;                                                               \
        }                                                                           \
        return PyType_GenericAlloc(t, nitems);                                      \
    }                                                                               \
    static CYTHON_UNUSED void name##_free(void *o) {                                \
        if (name##_len < 64) {                                                      \
            name##_slots[name##_len++] = (PyObject *)o;                             \
        } else {                                                                    \
            PyObject_GC_Del(o);                                                     \
        }                                                                           \
    }                                                                               \
    static CYTHON_UNUSED void name##_install(PyObject *type) {                      \
        ((PyTypeObject *)type)->tp_alloc = name##_alloc;                            \
        ((PyTypeObject *)type)->tp_free = name##_free;                              \
    }
    GUARD_POOL(guard_entry_pool)
    GUARD_POOL(guard_verdict_pool)

    /* A refusal built by its type's tp_new alone. BlockError has no __init__ of its own and
       BaseException's would store the same args again, so this is the same object without
       the generic call path (argument tuple, type_call, __init__): a fifth of the cost of
       a refused call. */
    static inline PyObject *guard_new_error(PyObject *cls, PyObject *args) {
        return ((PyTypeObject *)cls)->tp_new((PyTypeObject *)cls, args, NULL);
    }
    """
    void guard_entry_pool_install(object type)
    void guard_verdict_pool_install(object type)
    object guard_new_error(object cls, tuple args)


cdef inline long long mono_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec // 1000000


@cython.final
cdef class Verdict:
    cdef public object error
    cdef public double wait_ms


cdef class PrepareSlot:
    cpdef prepare(self, Entry e)


cdef class Check:
    cdef public bint has_stat
    cdef public bint uses_origin_node
    cdef public bint uses_context_node
    cpdef check(self, Entry e)
    cpdef on_pass(self, Entry e)
    cpdef on_block(self, Entry e, error)
    cpdef on_complete(self, Entry e)


cdef class StatSlot(Check):
    pass


cpdef Verdict block(error)
cpdef object new_error(type cls, str resource, rule, retry_after)
cpdef Verdict wait(double ms)


@cython.final
cdef class Plan:
    cdef public list prepare
    cdef public list checks
    cdef public list stats
    cdef public bint origin_nodes
    cdef public bint context_nodes


@cython.final
cdef class Core:
    cdef public object clock
    cdef public bint real_clock
    cdef public long long sample_count
    cdef public StatNode inbound_node
    cdef public long long gen
    cdef public dict plans
    cdef public Plan default_plan
    cpdef long long now(self)


@cython.final
cdef class Resource:
    cdef public Core core
    cdef public str name
    cdef public StatNode node
    cdef public dict origin_nodes
    cdef public dict context_nodes
    cdef public long long gen
    cdef public Plan plan
    cpdef Plan current_plan(self)
    cpdef origin_node(self, str origin)
    cpdef context_node(self, str name)


cdef bint contexts_used

cpdef Entry new_entry(Core core, Resource res, origin, tuple args, long long count, bint inbound)


@cython.final
cdef class EntryMaker:
    cdef public Core core
    cdef public dict resources
    cdef public object make_resource


cdef class NodeSelectorSlot(PrepareSlot):
    pass


cdef class StatisticSlot(StatSlot):
    cdef void _complete(self, StatNode node, Entry e) noexcept


@cython.final
cdef class Entry:
    cdef public Core core
    cdef public Resource res
    cdef public object origin
    cdef public tuple args
    cdef public long long count
    cdef public bint inbound
    cdef public object context_name
    cdef public object origin_node
    cdef public object context_node
    cdef public object plan
    cdef public object error
    cdef public object data
    cdef public int state
    cdef public long long start
    cdef public long long pass_time
    cdef public long long end
    cdef public double wait_ms
    cdef public tuple trace_types
    cdef public tuple ignore_types
    cdef void _setup(self, Core core, Resource res, origin, tuple args, long long count, bint inbound) noexcept
    cpdef check(self)
    cdef void _blocked(self, Plan plan, error)
    cpdef passed(self)
    cpdef bint traceable(self, exc)
    cpdef exit(self)

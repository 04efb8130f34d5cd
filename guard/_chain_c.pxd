cimport cython
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from guard.stat._window_c cimport StatNode

# Entry states and the default trace types as C constants (the .py assigns the same values):
# as Python globals each test on the entry path cost a dict lookup and an int object.
cdef int NEW, ENTERED, BLOCKED, EXITED
cdef tuple _TRACE_ALL


cdef inline long long mono_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec // 1000000


@cython.final
@cython.freelist(64)
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

cpdef Entry new_entry(Core core, Resource res, origin, args, long long count, bint inbound)


@cython.final
cdef class EntryMaker:
    cdef public Core core
    cdef public dict resources
    cdef public object make_resource


cdef class NodeSelectorSlot(PrepareSlot):
    pass


cdef class StatisticSlot(StatSlot):
    cdef void _complete(self, StatNode node, Entry e)


@cython.final
@cython.freelist(64)
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
    cdef void _setup(self, Core core, Resource res, origin, args, long long count, bint inbound)
    cpdef check(self)
    cdef void _blocked(self, Plan plan, error)
    cpdef passed(self)
    cpdef bint traceable(self, exc)
    cpdef exit(self)

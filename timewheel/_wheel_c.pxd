# C declarations for _wheel_py.py, compiled as timewheel._wheel_c (see setup.py).
cimport cython

ctypedef long long i64

cdef long long _LIMIT, _SPAN, _CHUNK, _SLOT_MASK, _GEN_MASK, _STALE

cdef object _ms(object value, str what)
cdef dict _WHEELS
cdef object _IDS


cdef class TimingWheel

@cython.locals(ref=object, wheel=TimingWheel)
cdef bint _handle_op(long long wid, int slot, int gen, bint cancel) except -1


@cython.final
@cython.freelist(256)
cdef class Handle:
    cdef long long _wid
    cdef int _slot
    cdef int _gen


@cython.final
cdef class TimingWheel:
    cdef long long _tick, _size, _base, _now, _clk, _maxl, _mod, _od
    cdef Py_ssize_t _count, _levels, _scap, _snext, _free, _pcap, _pnext, _pfree, _hlen
    cdef long long[::1] _lt, _lsh
    cdef bint _pow2
    cdef long long[::1] _bhead, _btail, _bfill, _blive, _bkey, _bhk, _bmin
    cdef long long[::1] _rec, _pool, _heap, _scr, _sd
    cdef object _rec_arr, _pool_arr, _heap_arr, _scr_arr, _sd_arr
    cdef list _spay
    cdef long long _wid
    cdef object __weakref__

    @cython.locals(d="long long")
    cpdef Handle schedule(self, object delay_ms, object payload)
    @cython.locals(d="long long")
    cpdef Handle schedule_at(self, object deadline_ms, object payload)
    @cython.locals(t="long long")
    cpdef list advance(self, object now_ms)

    cdef i64 _checked(self, i64 d) except? 7
    @cython.locals(s=Py_ssize_t, g="long long", h=Handle)
    cdef Handle _add(self, long long d, object payload)
    @cython.locals(c="long long", lvl=Py_ssize_t)
    cdef Py_ssize_t _level(self, long long d) noexcept
    @cython.locals(key="long long", lvl=Py_ssize_t, idx=Py_ssize_t, b=Py_ssize_t,
                   sh="long long", q="long long", start="long long", t="long long")
    cdef int _file(self, long long e, long long d, long long lo) except -1
    @cython.locals(fill="long long", c="long long", n="long long")
    cdef int _append_entry(self, Py_ssize_t b, long long e) except -1

    cdef bint _is_pending(self, Py_ssize_t s, int g)
    @cython.locals(b=Py_ssize_t, d="long long")
    cdef bint _cancel(self, Py_ssize_t s, int g)
    @cython.locals(lvl=Py_ssize_t)
    cdef Py_ssize_t _bucket_at(self, long long d) noexcept

    @cython.locals(item="long long", key="long long", rank="long long", lvl=Py_ssize_t,
                   b=Py_ssize_t, m=Py_ssize_t)
    cdef list _advance(self, long long now)
    @cython.locals(n=Py_ssize_t, k=Py_ssize_t, i=Py_ssize_t, d="long long",
                   prev="long long", ordered=bint)
    cdef Py_ssize_t _fire(self, Py_ssize_t b, long long now, Py_ssize_t m) except -1
    @cython.locals(n=Py_ssize_t, i=Py_ssize_t)
    cdef int _cascade(self, Py_ssize_t b, long long key, Py_ssize_t m) except -1
    @cython.locals(out=list, i=Py_ssize_t, s=Py_ssize_t)
    cdef list _take(self, Py_ssize_t m)
    @cython.locals(i=Py_ssize_t, keyed=list, d="long long", e="long long")
    cdef int _sort_scratch(self, Py_ssize_t lo, Py_ssize_t hi) except -1
    @cython.locals(n=Py_ssize_t, c="long long", tail="long long", base="long long",
                   cnt="long long", j="long long", e="long long", s="long long",
                   nxt="long long")
    cdef Py_ssize_t _collect(self, Py_ssize_t b, Py_ssize_t at) except -1
    cdef int _grow_scratch(self, Py_ssize_t cap) except -1
    cdef void _reset_bucket(self, Py_ssize_t b) noexcept

    @cython.locals(item="long long", key="long long", b=Py_ssize_t, best="long long",
                   i=Py_ssize_t, m="long long", stack=list)
    cdef i64 _next_internal(self) except? 7
    @cython.locals(rank="long long")
    cdef Py_ssize_t _bucket_of(self, long long item) noexcept
    @cython.locals(best="long long", c="long long", tail="long long", base="long long",
                   cnt="long long", j="long long", e="long long", s="long long")
    cdef long long _bucket_min(self, Py_ssize_t b) noexcept

    cdef int _push_bucket(self, Py_ssize_t b, Py_ssize_t lvl, Py_ssize_t idx,
                          long long key) except -1
    @cython.locals(n=Py_ssize_t, parent=Py_ssize_t, p="long long")
    cdef int _heap_push(self, long long item) except -1
    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, child=Py_ssize_t, last="long long")
    cdef void _heap_pop(self) noexcept

    @cython.locals(s=Py_ssize_t)
    cdef Py_ssize_t _alloc_slot(self) except -1
    @cython.locals(cap=Py_ssize_t)
    cdef int _grow_slots(self) except -1
    cdef void _release_slot(self, Py_ssize_t s) noexcept
    @cython.locals(c=Py_ssize_t, cap=Py_ssize_t)
    cdef Py_ssize_t _new_chunk(self) except -1
    @cython.locals(nxt="long long")
    cdef void _free_chain(self, long long c) noexcept

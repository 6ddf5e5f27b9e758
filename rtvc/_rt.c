/* rtvc's audio callbacks and the rings they touch, in C.

   A PortAudio callback written in Python must take the GIL before its first line runs. On a busy machine
   the thread holding it (the worker between two numpy calls, the control server, the OS having preempted
   either) can keep it past the device's deadline: an xrun that a C client on the same server never has.
   These callbacks never touch the interpreter: they copy samples between the device's buffers and
   lock-free single-producer/single-consumer rings, count, and post the worker's doorbell (a semaphore).
   Python (rtvc.ring, rtvc.engine) drives the other side of each ring through the exported functions, with
   ctypes, and reads the counters as plain fields.

   No allocation, no locks, no logging and no system call in the steady state (sem_post when a block is
   ready; the scheduling calls run once per stream and per change of the real-time wish).

   The ring protocol (positions are monotonic frame counts; one producer, one consumer):
   - the producer publishes the end of the write under way in `claim` before copying and `write_pos` after;
   - the consumer copies, then checks that `claim` did not reach what it copied (a seqlock's check), and
     publishes `read_pos` after;
   - a producer that finds the consumer a whole ring behind overwrites the oldest unread frames (positions
     stay the clock's); the consumer skips them, counted.
   rtvc/ring.py has the semantics in words; tests/test_ring.py checks them against a model. */

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#define RTVC_EXPORT __declspec(dllexport)
#elif defined(__APPLE__)
#include <dispatch/dispatch.h>
#include <time.h>
#define RTVC_EXPORT __attribute__((visibility("default")))
#else
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#define RTVC_EXPORT __attribute__((visibility("default")))
#endif

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release

/* PortAudio's callback flags (portaudio.h) */
#define PA_INPUT_UNDERFLOW 0x1
#define PA_INPUT_OVERFLOW 0x2
#define PA_OUTPUT_UNDERFLOW 0x4
#define PA_OUTPUT_OVERFLOW 0x8
#define PA_PRIMING_OUTPUT 0x10
#define PA_XRUN_FLAGS (PA_INPUT_UNDERFLOW | PA_INPUT_OVERFLOW | PA_OUTPUT_UNDERFLOW | PA_OUTPUT_OVERFLOW)
#define PA_CONTINUE 0

/* frames a callback's output is staged in at a time (a longer callback is done in pieces) */
#define SCRATCH_FRAMES 16384

/* ---- the ring -------------------------------------------------------------------------------------- */

/* The layout is mirrored by rtvc.ring._RingFields: change both together. */
typedef struct {
    _Atomic int64_t write_pos; /* frames published by the producer */
    _Atomic int64_t read_pos;  /* frames consumed by the consumer */
    _Atomic int64_t claim;     /* the end of the write under way */
    int64_t capacity;
    _Atomic int64_t late_frames;     /* producer: dropped, their slot already played */
    _Atomic int64_t overrun_frames;  /* consumer: overwritten before read, skipped */
    _Atomic int64_t overrun_events;
    _Atomic int64_t underrun_frames; /* consumer: played as zeros */
    _Atomic int64_t underrun_events;
    int64_t fade; /* consumer (rtvc_ring_read_timeline): frames after a gap still fading in */
    float *buf;
} rtvc_ring;

/* After a gap (an underrun played as zeros) the audio fades in over this many frames: it came back at full
   amplitude from zero, a click (a helper measured 43 times the tone's largest step). The gap's start cannot be
   faded: its frames were played before the ring knew it would run dry. */
#define FADE_IN_FRAMES 128

static inline int64_t load(_Atomic int64_t *x) { return atomic_load_explicit(x, RELAXED); }
static inline void store(_Atomic int64_t *x, int64_t v) { atomic_store_explicit(x, v, RELAXED); }
static inline void bump(_Atomic int64_t *x, int64_t n) { store(x, load(x) + n); } /* one writer per field */
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int ring_init(rtvc_ring *r, int64_t capacity) {
    memset(r, 0, sizeof *r);
    r->capacity = capacity;
    r->buf = calloc((size_t)capacity, sizeof(float));
    return r->buf != NULL;
}

RTVC_EXPORT rtvc_ring *rtvc_ring_new(int64_t capacity) {
    if (capacity < 1) return NULL;
    rtvc_ring *r = malloc(sizeof *r);
    if (r == NULL) return NULL;
    if (!ring_init(r, capacity)) {
        free(r);
        return NULL;
    }
    return r;
}

RTVC_EXPORT void rtvc_ring_free(rtvc_ring *r) {
    if (r == NULL) return;
    free(r->buf);
    free(r);
}

/* Both sides idle: positions back to 0 (the counters stay). */
RTVC_EXPORT void rtvc_ring_restart(rtvc_ring *r) {
    store(&r->claim, 0);
    store(&r->read_pos, 0);
    atomic_store_explicit(&r->write_pos, 0, RELEASE);
}

RTVC_EXPORT int64_t rtvc_ring_available(rtvc_ring *r) {
    int64_t w = atomic_load_explicit(&r->write_pos, ACQUIRE);
    return max64(0, w - max64(load(&r->read_pos), load(&r->claim) - r->capacity));
}

RTVC_EXPORT int64_t rtvc_ring_overwritten(rtvc_ring *r) {
    return max64(0, load(&r->claim) - r->capacity - load(&r->read_pos));
}

/* stride: samples between frames in `x` (the input channel of an interleaved buffer) */
static void put(rtvc_ring *r, int64_t pos, const float *x, int64_t n, int64_t stride) {
    int64_t i = pos % r->capacity;
    int64_t first = min64(n, r->capacity - i);
    if (x == NULL) { /* (a host that gave no input buffer: silence) */
        memset(r->buf + i, 0, (size_t)first * sizeof(float));
        memset(r->buf, 0, (size_t)(n - first) * sizeof(float));
    } else if (stride == 1) {
        memcpy(r->buf + i, x, (size_t)first * sizeof(float));
        memcpy(r->buf, x + first, (size_t)(n - first) * sizeof(float));
    } else {
        for (int64_t k = 0; k < first; k++) r->buf[i + k] = x[k * stride];
        for (int64_t k = first; k < n; k++) r->buf[k - first] = x[k * stride];
    }
}

static void get(rtvc_ring *r, int64_t pos, float *out, int64_t n) {
    int64_t i = pos % r->capacity;
    int64_t first = min64(n, r->capacity - i);
    memcpy(out, r->buf + i, (size_t)first * sizeof(float));
    memcpy(out + first, r->buf, (size_t)(n - first) * sizeof(float));
}

/* The producer is about to overwrite up to `end` - capacity: the consumer must see that before the data. */
static void publish_claim(rtvc_ring *r, int64_t end) {
    store(&r->claim, end);
    atomic_thread_fence(memory_order_release);
}

/* Producer: append n frames (x == NULL: silence); returns how many the consumer can still get. Frames whose
   slot the consumer has already played are dropped as late; past a full ring the oldest unread frames are
   overwritten. */
RTVC_EXPORT int64_t rtvc_ring_write(rtvc_ring *r, const float *x, int64_t n, int64_t stride) {
    int64_t w = load(&r->write_pos);
    int64_t rp = atomic_load_explicit(&r->read_pos, ACQUIRE);
    int64_t late = rp > w ? min64(n, rp - w) : 0;
    if (late) bump(&r->late_frames, late);
    int64_t keep = min64(n - late, r->capacity); /* (a write longer than the ring keeps its newest part) */
    publish_claim(r, w + n);
    if (keep) put(r, w + n - keep, x == NULL ? NULL : x + (n - keep) * stride, keep, stride);
    atomic_store_explicit(&r->write_pos, w + n, RELEASE);
    return n - late;
}

/* Producer: move on n frames with nothing to write; slots not played yet get silence. */
RTVC_EXPORT void rtvc_ring_advance(rtvc_ring *r, int64_t n) {
    int64_t w = load(&r->write_pos);
    int64_t rp = atomic_load_explicit(&r->read_pos, ACQUIRE);
    int64_t zeros = min64(w + n - max64(w, rp), r->capacity);
    publish_claim(r, w + n);
    if (zeros > 0) put(r, w + n - zeros, NULL, zeros, 1);
    atomic_store_explicit(&r->write_pos, w + n, RELEASE);
}

/* Consumer: step over frames the producer overwrote before they were read; returns how many. */
RTVC_EXPORT int64_t rtvc_ring_skip_overwritten(rtvc_ring *r) {
    int64_t lost = rtvc_ring_overwritten(r);
    if (lost) {
        atomic_store_explicit(&r->read_pos, load(&r->read_pos) + lost, RELEASE);
        bump(&r->overrun_frames, lost);
        bump(&r->overrun_events, 1);
    }
    return lost;
}

/* Did the producer claim (overwrite) anything at or after `pos` while we copied? */
static int copy_torn(rtvc_ring *r, int64_t pos) {
    atomic_thread_fence(memory_order_acquire);
    return load(&r->claim) - r->capacity > pos;
}

/* Consumer: copy up to n frames into out; returns how many. Never waits, never zero-fills. */
RTVC_EXPORT int64_t rtvc_ring_read_into(rtvc_ring *r, float *out, int64_t want) {
    for (;;) {
        rtvc_ring_skip_overwritten(r);
        int64_t rp = load(&r->read_pos);
        int64_t n = min64(want, atomic_load_explicit(&r->write_pos, ACQUIRE) - rp);
        if (n <= 0) return 0;
        get(r, rp, out, n);
        if (!copy_torn(r, rp)) {
            atomic_store_explicit(&r->read_pos, rp + n, RELEASE);
            return n;
        }
    }
}

/* Consumer: fill all of out and advance by `want`; frames not written yet become zeros (an underrun), and so
   does a copy the producer overwrote meanwhile. Returns the frames that were there. */
RTVC_EXPORT int64_t rtvc_ring_read_timeline(rtvc_ring *r, float *out, int64_t want) {
    rtvc_ring_skip_overwritten(r);
    int64_t rp = load(&r->read_pos);
    int64_t n = max64(0, min64(want, atomic_load_explicit(&r->write_pos, ACQUIRE) - rp));
    if (n) {
        get(r, rp, out, n);
        if (copy_torn(r, rp)) n = 0;
    }
    for (int64_t k = 0; k < n && r->fade > 0; k++, r->fade--)
        out[k] *= (float)(FADE_IN_FRAMES - r->fade + 1) / (float)(FADE_IN_FRAMES + 1);
    if (n < want) {
        memset(out + n, 0, (size_t)(want - n) * sizeof(float));
        bump(&r->underrun_frames, want - n);
        bump(&r->underrun_events, 1);
        r->fade = FADE_IN_FRAMES;
    }
    atomic_store_explicit(&r->read_pos, rp + want, RELEASE);
    return n;
}

/* Consumer: drop what is readable before `pos` unread (never past what was written), counted as overrun if
   `count`; returns how many frames it dropped besides those overwritten. */
RTVC_EXPORT int64_t rtvc_ring_skip_to(rtvc_ring *r, int64_t pos, int count) {
    int64_t lost = rtvc_ring_skip_overwritten(r);
    int64_t rp = load(&r->read_pos);
    int64_t n = max64(0, min64(pos, atomic_load_explicit(&r->write_pos, ACQUIRE)) - rp);
    atomic_store_explicit(&r->read_pos, rp + n, RELEASE);
    if (count && n) {
        bump(&r->overrun_frames, n);
        if (!lost) bump(&r->overrun_events, 1); /* (one jump, one event) */
    }
    return n;
}

/* ---- the doorbell: a binary semaphore the callbacks post without ever waiting -------------------------- */

typedef struct {
    atomic_int pending; /* rung: a post is made (or about to be) and not yet taken */
#if defined(_WIN32)
    HANDLE sem;
#elif defined(__APPLE__)
    dispatch_semaphore_t sem;
#else
    sem_t sem;
#endif
} rtvc_bell;

static int bell_init(rtvc_bell *b) {
    atomic_init(&b->pending, 0);
#if defined(_WIN32)
    b->sem = CreateSemaphoreA(NULL, 0, 0x7fffffff, NULL);
    return b->sem != NULL;
#elif defined(__APPLE__)
    b->sem = dispatch_semaphore_create(0);
    return b->sem != NULL;
#else
    return sem_init(&b->sem, 0, 0) == 0;
#endif
}

static void bell_destroy(rtvc_bell *b) {
#if defined(_WIN32)
    CloseHandle(b->sem);
#elif defined(__APPLE__)
    dispatch_release(b->sem);
#else
    sem_destroy(&b->sem);
#endif
}

static void bell_ring(rtvc_bell *b) {
    if (atomic_exchange_explicit(&b->pending, 1, memory_order_acq_rel)) return; /* already rung */
#if defined(_WIN32)
    ReleaseSemaphore(b->sem, 1, NULL);
#elif defined(__APPLE__)
    dispatch_semaphore_signal(b->sem);
#else
    sem_post(&b->sem);
#endif
}

/* Block until rung or `timeout` seconds; clears the bell. 1 if it was rung. */
static int bell_wait(rtvc_bell *b, double timeout) {
    int rung;
#if defined(_WIN32)
    rung = WaitForSingleObject(b->sem, (DWORD)(timeout * 1e3)) == WAIT_OBJECT_0;
#elif defined(__APPLE__)
    rung = dispatch_semaphore_wait(b->sem, dispatch_time(DISPATCH_TIME_NOW, (int64_t)(timeout * 1e9))) == 0;
#else
    struct timespec ts;
    int rc;
    clockid_t clock = CLOCK_REALTIME;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
    clock = CLOCK_MONOTONIC; /* (a wall-clock step must not stretch the wait) */
#endif
    clock_gettime(clock, &ts);
    int64_t ns = ts.tv_nsec + (int64_t)(timeout * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    do {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
        rc = sem_clockwait(&b->sem, clock, &ts);
#else
        rc = sem_timedwait(&b->sem, &ts);
#endif
    } while (rc != 0 && errno == EINTR);
    rung = rc == 0;
#endif
    /* Cleared only once its post is taken, so at most one post is ever outstanding: a ring between the wake-up
       and this finds the bell still rung and posts nothing (the worker looks at the rings after this anyway).
       After a timeout it is left as it is: a ring that set it has posted, or is about to. */
    if (rung) atomic_exchange_explicit(&b->pending, 0, memory_order_acq_rel);
    return rung;
}

/* ---- the clock the callbacks stamp (the stall check compares with it) ---------------------------------- */

RTVC_EXPORT int64_t rtvc_now_ns(void) {
#if defined(_WIN32)
    static LARGE_INTEGER freq;
    LARGE_INTEGER t;
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&t);
    return (int64_t)((double)t.QuadPart * 1e9 / (double)freq.QuadPart);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

/* ---- the engine's device side ----------------------------------------------------------------------- */

/* One stream's counters, written by its callback thread (and `forget`-style resets by Python between
   streams). Mirrored by rtvc.engine._CounterFields. */
typedef struct {
    _Atomic int64_t callbacks;
    _Atomic int64_t last_callback_ns; /* rtvc_now_ns() at the latest callback */
    _Atomic int64_t flags[5];         /* input_underflow, input_overflow, output_underflow, output_overflow,
                                         priming_output */
    _Atomic int64_t xrun_callbacks;   /* callbacks with any xrun flag */
    _Atomic int32_t ours;             /* this stream's callback thread is ours to schedule (not JACK's) */
    _Atomic int32_t sched_for;        /* the real-time wish `policy`/`priority` were learnt for; -1: not yet */
    _Atomic int32_t raised;           /* we raised this callback thread to real-time */
    _Atomic int32_t policy;           /* its scheduling policy as the OS reports it; -1: no way to ask */
    _Atomic int32_t priority;         /* its real-time priority (0 on the normal scheduler) */
    _Atomic int32_t slice_us;         /* on the normal scheduler: its time slice as the kernel reports it; 0: none */
    _Atomic int32_t tid;              /* its callback thread's id (Linux), learnt with its scheduling; 0: not known */
} rtvc_counters;

enum { MAIN = 0, OUTPUT = 1, MONITOR = 2 };

/* Mirrored by rtvc.engine._CoreFields (up to `bell`). */
typedef struct {
    rtvc_ring in, out, mon;
    rtvc_counters c[3];    /* input or duplex stream, separate output stream, monitor stream */
    _Atomic int32_t live;  /* the rings carry audio (set last by prepare) */
    _Atomic int32_t want;  /* the real-time wish (stream.realtime) */
    _Atomic int32_t callback_priority;
    _Atomic int32_t host_period; /* frames of the latest callback while not live (the host chose the period) */
    _Atomic int64_t block;       /* the worker's block: its doorbell rings once a block is waiting */
    _Atomic int64_t prefill;
    _Atomic int64_t lag_limit;   /* frames an output-only stream may trail its ring's writer by */
    /* the input or duplex stream's latest live callback size (high 32 bits) and how many live callbacks in a row
       had it (low 32): one word, so that the worker never reads a new size with the old size's count */
    _Atomic int64_t main_period;
    rtvc_bell bell;
    _Atomic int32_t placed[3]; /* an output-only stream (OUTPUT, MONITOR) has had its first live callback */
    /* frames an output-only stream plays behind the input's clock, to be heard with the main output: the monitor's
       beside a duplex stream that PortAudio delays a user buffer (a fixed period on JACK), else 0 */
    _Atomic int64_t phase[3];
    float scratch[3][SCRATCH_FRAMES]; /* one per stream: the output callbacks run on their own threads */
} rtvc_engine;

RTVC_EXPORT rtvc_engine *rtvc_engine_new(int64_t capacity) {
    if (capacity < 1) return NULL;
    rtvc_engine *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    if (!ring_init(&e->in, capacity) || !ring_init(&e->out, capacity) || !ring_init(&e->mon, capacity) ||
        !bell_init(&e->bell)) {
        free(e->in.buf);
        free(e->out.buf);
        free(e->mon.buf);
        free(e);
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        atomic_store(&e->c[k].ours, 1);
        atomic_store(&e->c[k].sched_for, -1);
        atomic_store(&e->c[k].policy, -1);
    }
    return e;
}

RTVC_EXPORT void rtvc_engine_free(rtvc_engine *e) {
    if (e == NULL) return;
    bell_destroy(&e->bell);
    free(e->in.buf);
    free(e->out.buf);
    free(e->mon.buf);
    free(e);
}

RTVC_EXPORT void rtvc_engine_plan(rtvc_engine *e, int64_t block, int64_t prefill, int64_t lag_limit) {
    store(&e->block, block);
    store(&e->prefill, prefill);
    store(&e->lag_limit, lag_limit);
    store(&e->main_period, 0); /* (the callbacks are not live: no writer meanwhile) */
}

RTVC_EXPORT void rtvc_engine_phase(rtvc_engine *e, int which, int64_t frames) {
    if (which >= 0 && which < 3) store(&e->phase[which], frames);
}

/* Set last by prepare (after the rings' restart and prefill), cleared first by suspend. */
RTVC_EXPORT void rtvc_engine_set_live(rtvc_engine *e, int live) {
    if (live)
        for (int k = 0; k < 3; k++) atomic_store(&e->placed[k], 0);
    atomic_store_explicit(&e->live, live, RELEASE);
}

RTVC_EXPORT void rtvc_engine_ring(rtvc_engine *e) { bell_ring(&e->bell); }

/* The worker: wait for the doorbell (called without the GIL). */
RTVC_EXPORT int rtvc_engine_wait(rtvc_engine *e, double timeout) { return bell_wait(&e->bell, timeout); }

#if defined(__linux__)
/* struct sched_attr (linux/sched/types.h), its first version */
typedef struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
} rtvc_sched_attr;

#define CALLBACK_SLICE_NS 100000 /* the shortest slice the kernel takes (0.1 ms) */

/* A callback thread left on the normal scheduler (real-time refused or not wished for; an audio server that runs
   without it, as `jackd --no-realtime` does) asks for a short time slice: EEVDF (Linux 6.12 on) lets a thread
   with a shorter slice preempt the running one when it wakes, instead of waiting for that one's slice (1.4 ms
   here) to run out. A callback takes microseconds, so it gets no more of the CPU, only sooner. With two
   busy-looping processes on this 2-core VM (rtvc serve on JACK --no-realtime, period 256): 77 xruns in 90 s
   without it, 2 with it; jackd found rtvc's thread woken but not yet run ("state = Triggered") in each.
   No privilege is needed; older kernels take the call and keep their own slice. Returns the slice the kernel
   reports, in microseconds (0 where it reports none). */
static int32_t ask_short_slice(void) {
    rtvc_sched_attr a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0 || a.policy != SCHED_OTHER) return 0;
    a.size = sizeof a;
    a.flags &= 0x01; /* (SCHED_FLAG_RESET_ON_FORK; the rest would need fields of later versions) */
    a.runtime = CALLBACK_SLICE_NS;
    syscall(SYS_sched_setattr, 0, &a, 0);
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0) return 0;
    return (int32_t)(a.runtime / 1000);
}
#endif

/* On a callback thread, when the real-time wish changed (or at its first call): raise it above the worker
   where it is ours, and learn its scheduling for the worker (rtvc.priority has the reasons); on the normal
   scheduler, ask for a short slice. */
static void learn_scheduling(rtvc_engine *e, rtvc_counters *c, int want) {
#if defined(__linux__)
    int prio = atomic_load(&e->callback_priority);
    int raised = atomic_load(&c->raised);
    struct sched_param sp;
    if (atomic_load(&c->ours)) {
        if (want) {
            int now = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
            int cur = 0;
            if ((now == SCHED_FIFO || now == SCHED_RR) && sched_getparam(0, &sp) == 0) cur = sp.sched_priority;
            if (!raised && cur < prio) {
                sp.sched_priority = prio;
                raised = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
            }
        } else if (raised) {
            sp.sched_priority = 0;
            sched_setscheduler(0, SCHED_OTHER, &sp);
            raised = 0;
        }
        atomic_store(&c->raised, raised);
    }
    int policy = sched_getscheduler(0);
    int got = 0;
    if (policy >= 0) {
        policy &= ~SCHED_RESET_ON_FORK; /* (RTKit and PipeWire set it on the threads they make real-time) */
        if ((policy == SCHED_FIFO || policy == SCHED_RR) && sched_getparam(0, &sp) == 0) got = sp.sched_priority;
    }
    atomic_store(&c->slice_us, policy == SCHED_OTHER ? ask_short_slice() : 0);
    atomic_store(&c->policy, policy < 0 ? -1 : policy);
    atomic_store(&c->priority, got);
    atomic_store(&c->tid, (int32_t)syscall(SYS_gettid)); /* (its CPU time tells a thread that spins: switch.py) */
#else
    (void)e;
    atomic_store(&c->policy, -1); /* (no SCHED_FIFO binding there: rtvc.priority.SUPPORTED) */
#endif
    atomic_store_explicit(&c->sched_for, want, RELEASE);
}

static void enter(rtvc_engine *e, rtvc_counters *c, unsigned long flags) {
    bump(&c->callbacks, 1);
    store(&c->last_callback_ns, rtvc_now_ns());
    int want = atomic_load_explicit(&e->want, RELAXED);
    if (atomic_load_explicit(&c->sched_for, ACQUIRE) != want) learn_scheduling(e, c, want);
    if (flags) {
        if (flags & PA_INPUT_UNDERFLOW) bump(&c->flags[0], 1);
        if (flags & PA_INPUT_OVERFLOW) bump(&c->flags[1], 1);
        if (flags & PA_OUTPUT_UNDERFLOW) bump(&c->flags[2], 1);
        if (flags & PA_OUTPUT_OVERFLOW) bump(&c->flags[3], 1);
        if (flags & PA_PRIMING_OUTPUT) bump(&c->flags[4], 1);
        if (flags & PA_XRUN_FLAGS) bump(&c->xrun_callbacks, 1);
    }
}

/* The ring's timeline into every channel of an interleaved output buffer. */
static void play(rtvc_ring *r, float *scratch, float *out, int channels, int64_t frames) {
    for (int64_t done = 0; done < frames;) {
        int64_t n = min64(frames - done, SCRATCH_FRAMES);
        rtvc_ring_read_timeline(r, scratch, n);
        float *o = out + done * channels;
        if (channels == 1) {
            memcpy(o, scratch, (size_t)n * sizeof(float));
        } else {
            for (int64_t k = 0; k < n; k++)
                for (int ch = 0; ch < channels; ch++) o[k * channels + ch] = scratch[k];
        }
        done += n;
    }
}

static int not_live(rtvc_engine *e, float *out, int channels, int64_t frames, int learn) {
    if (atomic_load_explicit(&e->live, ACQUIRE)) return 0;
    if (out != NULL) memset(out, 0, (size_t)(frames * channels) * sizeof(float));
    if (learn) { /* the period chosen by the host: the worker learns it from the first callback */
        atomic_store(&e->host_period, (int32_t)frames);
        bell_ring(&e->bell);
    }
    return 1;
}

/* The main stream's callback size and how many callbacks in a row had it: an audio server can change its period
   while streams run (JACK's buffer size, PipeWire's quantum), and the worker then plans for the new one. */
static void note_frames(rtvc_engine *e, int64_t frames) {
    int64_t v = load(&e->main_period);
    if ((v >> 32) == frames) {
        if ((v & 0x7fffffff) != 0x7fffffff) store(&e->main_period, v + 1);
    } else {
        store(&e->main_period, (frames << 32) | 1);
    }
}

/* The worker's doorbell once a block waits in the input ring (once per block, not per callback). */
static void wake_if_block(rtvc_engine *e) {
    if (rtvc_ring_available(&e->in) >= load(&e->block)) bell_ring(&e->bell);
}

/* in: the input channel's first sample, `stride` samples between frames; out: (frames, channels) */
RTVC_EXPORT void rtvc_duplex(rtvc_engine *e, const float *in, int64_t stride, float *out, int channels,
                             int64_t frames, unsigned long flags) {
    enter(e, &e->c[MAIN], flags);
    if (not_live(e, out, channels, frames, 1)) return;
    note_frames(e, frames);
    rtvc_ring_write(&e->in, in, frames, stride);
    play(&e->out, e->scratch[MAIN], out, channels, frames);
    wake_if_block(e);
}

RTVC_EXPORT void rtvc_input(rtvc_engine *e, const float *in, int64_t stride, int64_t frames, unsigned long flags) {
    enter(e, &e->c[MAIN], flags);
    if (not_live(e, NULL, 0, frames, 1)) return;
    note_frames(e, frames);
    rtvc_ring_write(&e->in, in, frames, stride);
    wake_if_block(e);
}

/* An output-only stream (which: OUTPUT or MONITOR): its ring on the fixed timeline, to every channel. */
RTVC_EXPORT void rtvc_play(rtvc_engine *e, int which, float *out, int channels, int64_t frames,
                           unsigned long flags) {
    rtvc_ring *r = which == MONITOR ? &e->mon : &e->out;
    enter(e, &e->c[which], flags);
    if (not_live(e, out, channels, frames, 0)) return;
    /* A stream whose callbacks stopped a while trails its writer by more than its phase: it skips ahead to the
       input's clock (less the phase the plan's extra period covers). At once when the host says its device ran
       dry (the time it missed is gone); otherwise past a limit that a late callback's burst of catch-up calls
       stays under. */
    int64_t lead = atomic_load_explicit(&r->write_pos, ACQUIRE) - load(&r->read_pos);
    int64_t clock = atomic_load_explicit(&e->in.write_pos, ACQUIRE) - frames - load(&e->phase[which]);
    if (lead > load(&e->lag_limit) || ((flags & PA_OUTPUT_UNDERFLOW) && lead > load(&e->prefill) + 2 * frames))
        rtvc_ring_skip_to(r, clock, 1);
    else if (!atomic_exchange(&e->placed[which], 1) && clock > load(&r->read_pos))
        /* Its first live callback, cycles after the input's first (JACK runs a stream started later from a later
           cycle on): it starts at the input's clock, as the lag above would place it. From 0 it trailed by as many
           periods for the whole run, under the lag limit: 1 or 2 periods more than declared, at random per start */
        rtvc_ring_skip_to(r, clock, 0);
    play(r, e->scratch[which], out, channels, frames);
}

/* ---- PortAudio's side ------------------------------------------------------------------------------- */

enum { DUPLEX = 0, INPUT = 1, OUTPUT_STREAM = 2, MONITOR_STREAM = 3 };

/* One stream's userData. Mirrored by rtvc.audio.io._StreamFields. */
typedef struct {
    rtvc_engine *engine;
    int32_t kind;
    int32_t in_channels; /* interleaved input channels PortAudio delivers */
    int32_t in_channel;  /* the one the microphone is on, 0-based */
    int32_t out_channels;
} rtvc_stream;

/* A PaStreamCallback (portaudio.h): the same signature, PortAudio's types spelt as what they are. */
RTVC_EXPORT int rtvc_pa_callback(const void *input, void *output, unsigned long frames, const void *time_info,
                                 unsigned long flags, void *user) {
    (void)time_info;
    const rtvc_stream *s = user;
    const float *in = input == NULL ? NULL : (const float *)input + s->in_channel;
    switch (s->kind) {
    case DUPLEX:
        rtvc_duplex(s->engine, in, s->in_channels, output, s->out_channels, (int64_t)frames, flags);
        break;
    case INPUT:
        rtvc_input(s->engine, in, s->in_channels, (int64_t)frames, flags);
        break;
    case OUTPUT_STREAM:
        rtvc_play(s->engine, OUTPUT, output, s->out_channels, (int64_t)frames, flags);
        break;
    default:
        rtvc_play(s->engine, MONITOR, output, s->out_channels, (int64_t)frames, flags);
    }
    return PA_CONTINUE;
}

/* ---- the layout rtvc/callbacks.py mirrors (checked at import: a build older than the Python fails there) -- */

#define RTVC_ABI 5

RTVC_EXPORT int rtvc_layout(int64_t *out, int n) {
    int64_t v[] = {
        RTVC_ABI,
        (int64_t)sizeof(rtvc_ring),
        (int64_t)offsetof(rtvc_ring, buf),
        (int64_t)sizeof(rtvc_counters),
        (int64_t)offsetof(rtvc_counters, tid),
        (int64_t)offsetof(rtvc_engine, c),
        (int64_t)offsetof(rtvc_engine, live),
        (int64_t)offsetof(rtvc_engine, lag_limit),
        (int64_t)offsetof(rtvc_engine, bell),
        (int64_t)sizeof(rtvc_stream),
        (int64_t)offsetof(rtvc_stream, out_channels),
    };
    int k = 0;
    for (; k < n && k < (int)(sizeof v / sizeof v[0]); k++) out[k] = v[k];
    return k;
}

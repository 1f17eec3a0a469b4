/* Preloaded before Debian's libfaketime 0.9.10 when the suite runs at a faked date (scripts/test-at.sh).
 *
 * The suite moves only the wall clock, by a constant offset (FAKETIME="+Ns", no speed-up), and keeps
 * the monotonic clock real (FAKETIME_DONT_FAKE_MONOTONIC=1): Python's lock and event timeouts use
 * sem_clockwait on CLOCK_MONOTONIC, which 0.9.10 does not translate, so a faked monotonic clock makes
 * every timed wait last for months. Two more defects of 0.9.10 then remain, both fixed here by
 * sending the call straight to the kernel (correct with a pure offset: nothing to translate):
 * - clock_nanosleep shifts absolute CLOCK_MONOTONIC deadlines by the offset and fails with EINVAL
 *   (Python's time.sleep); CLOCK_REALTIME sleeps still go to libfaketime;
 * - its epoll_wait/poll/select wrappers swallow the signal that ends a wait, so PostgreSQL's
 *   lock_timeout and statement_timeout (a SIGALRM during epoll_wait) never fire.
 * Relative timeouts need no translation at a constant offset.
 *
 * And one race: 0.9.10 answers the *real* time to a clock read made inside a signal handler that
 * interrupted one of its own clock reads. PostgreSQL's SIGALRM handler reads the clock to re-arm its
 * timers, and can then arm setitimer for the fake offset (weeks): a lock_timeout that never fires.
 * In PostgreSQL's processes only, setitimer here caps a one-shot ITIMER_REAL at one second; its
 * handler treats an early alarm as a spurious one and re-arms for what is left, now from a correct
 * clock read. (Other programs keep their timers: pytest-timeout's alarm must not fire early.)
 *
 * And one cost: 0.9.10 wraps pthread_cond_timedwait for every condition variable, which is how Python
 * hands its GIL between threads, and makes a thread-heavy test ~10x slower. A wait on a CLOCK_MONOTONIC
 * condition variable (the clock stays real) goes straight to glibc here; others still go to
 * libfaketime, which translates their CLOCK_REALTIME deadlines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *request, struct timespec *remain)
{
    if (clock_id != CLOCK_REALTIME) {
        long rc = syscall(SYS_clock_nanosleep, clock_id, flags, request, remain);
        return rc == 0 ? 0 : errno;
    }
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!next)
        next = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock_id, flags, request, remain);
}

int nanosleep(const struct timespec *request, struct timespec *remain)
{
    return (int)syscall(SYS_nanosleep, request, remain);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, NULL, (size_t)(_NSIG / 8));
}

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *sigmask)
{
    return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, sigmask, (size_t)(_NSIG / 8));
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
        tsp = &ts;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, tsp, NULL, (size_t)(_NSIG / 8));
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask)
{
    struct timespec copy, *tsp = NULL;
    if (timeout) {
        copy = *timeout; /* the kernel writes the remaining time back */
        tsp = &copy;
    }
    return (int)syscall(SYS_ppoll, fds, nfds, tsp, sigmask, (size_t)(_NSIG / 8));
}

int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout)
{
    return (int)syscall(SYS_select, nfds, readfds, writefds, exceptfds, timeout);
}

extern char *program_invocation_short_name;

int setitimer(__itimer_which_t which, const struct itimerval *restrict value, struct itimerval *restrict old)
{
    struct itimerval capped;
    if (which == ITIMER_REAL && value && value->it_interval.tv_sec == 0 && value->it_interval.tv_usec == 0
        && value->it_value.tv_sec > 60 && strcmp(program_invocation_short_name, "postgres") == 0) {
        capped = *value;
        capped.it_value.tv_sec = 1;
        capped.it_value.tv_usec = 0;
        value = &capped;
    }
    return (int)syscall(SYS_setitimer, which, value, old);
}

/* glibc (>= 2.25) marks a condition variable that uses CLOCK_MONOTONIC with bit 1 of __wrefs. */
#define COND_CLOCK_MONOTONIC_MASK 2u

int pthread_cond_timedwait(pthread_cond_t *restrict cond, pthread_mutex_t *restrict mutex,
                           const struct timespec *restrict abstime)
{
    typedef int (*wait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    static wait_fn glibc_wait, faketime_wait;
    if (!glibc_wait) {
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        glibc_wait = libc ? (wait_fn)dlvsym(libc, "pthread_cond_timedwait", "GLIBC_2.3.2") : NULL;
        faketime_wait = (wait_fn)dlvsym(RTLD_NEXT, "pthread_cond_timedwait", "GLIBC_2.3.2");
        if (!faketime_wait)
            faketime_wait = (wait_fn)dlsym(RTLD_NEXT, "pthread_cond_timedwait");
    }
    if (glibc_wait && (cond->__data.__wrefs & COND_CLOCK_MONOTONIC_MASK))
        return glibc_wait(cond, mutex, abstime);
    return faketime_wait(cond, mutex, abstime);
}

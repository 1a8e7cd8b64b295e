/* A small thread pool for the decode kernels: workers spin briefly waiting for the next task (a
 * decode step dispatches a few hundred), then sleep on a condition variable, so an idle pool
 * costs nothing. Task i of n runs on thread i; the caller is thread 0. The pool notices a fork
 * (its threads do not survive one) and starts afresh in the child. */

#ifndef QUANTA_POOL_H
#define QUANTA_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

#define POOL_MAX 64
#define POOL_SPINS 200000

typedef void (*pool_fn)(void *ctx, int ith, int nth);

typedef struct {
    int n;  /* threads, the caller included */
    pid_t pid;
    pthread_t th[POOL_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int gen, done, sleepers, stop;
    pool_fn fn;
    void *ctx;
} pool_t;

typedef struct { pool_t *p; int ith; } pool_arg_t;
static pool_arg_t POOL_ARGS[POOL_MAX];

static void *pool_worker(void *arg) {
    pool_arg_t *a = (pool_arg_t *)arg;
    pool_t *p = a->p;
    int last = 0;  /* the generation at the pool's start: a task published before this thread ran is not missed */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == last && !atomic_load(&p->stop)) {
            if (++spins < POOL_SPINS) { POOL_PAUSE(); continue; }
            atomic_fetch_add(&p->sleepers, 1);
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == last && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        if (atomic_load(&p->stop)) return NULL;
        last = atomic_load(&p->gen);
        p->fn(p->ctx, a->ith, p->n);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static pool_t POOL;
static int POOL_STARTED = 0;

static void pool_stop(void) {
    if (!POOL_STARTED) return;
    if (POOL.pid == getpid()) {
        atomic_store(&POOL.stop, 1);
        pthread_mutex_lock(&POOL.mu);
        pthread_cond_broadcast(&POOL.cv);
        pthread_mutex_unlock(&POOL.mu);
        for (int i = 1; i < POOL.n; i++) pthread_join(POOL.th[i], NULL);
        pthread_mutex_destroy(&POOL.mu);
        pthread_cond_destroy(&POOL.cv);
    }
    POOL_STARTED = 0;
}

/* Start (or resize) the pool to n threads; returns the count it runs with. */
static int pool_start(int n) {
    if (n < 1) n = 1;
    if (n > POOL_MAX) n = POOL_MAX;
    if (POOL_STARTED && POOL.n == n && POOL.pid == getpid()) return n;
    pool_stop();
    POOL.n = n;
    POOL.pid = getpid();
    atomic_store(&POOL.gen, 0); atomic_store(&POOL.done, 0);
    atomic_store(&POOL.sleepers, 0); atomic_store(&POOL.stop, 0);
    pthread_mutex_init(&POOL.mu, NULL);
    pthread_cond_init(&POOL.cv, NULL);
    for (int i = 1; i < n; i++) {
        POOL_ARGS[i].p = &POOL; POOL_ARGS[i].ith = i;
        if (pthread_create(&POOL.th[i], NULL, pool_worker, &POOL_ARGS[i]) != 0) { POOL.n = i; break; }
    }
    POOL_STARTED = 1;
    return POOL.n;
}

/* Run fn(ctx, i, n) for i in 0..n-1 on the pool's threads; returns when all are done. */
static void pool_run(pool_fn fn, void *ctx) {
    pool_t *p = &POOL;
    if (!POOL_STARTED) pool_start(1);
    else if (p->pid != getpid()) { int want = p->n; POOL_STARTED = 0; pool_start(want); }
    if (p->n == 1) { fn(ctx, 0, 1); return; }
    p->fn = fn; p->ctx = ctx;
    atomic_store(&p->done, 0);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1) POOL_PAUSE();
}

#endif

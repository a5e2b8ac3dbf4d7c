/*
 * The load generator of the matcher bench (tests/bench/matcher.py, issue 7
 * scenario 4): the same decisions as matcher.py's Python `_drive`, from C with
 * hiredis, so that the figure is the matcher's and not redis-py's. One Python
 * process tops out near 5,000 EVALSHA/s of a trivial script, a tenth of what
 * redis-benchmark gets from the same server.
 *
 * One thread per connection. Thread i drives advocates i, i + connections,
 * ... (matcher.py's advocates[i::concurrency]), in rounds:
 *
 *   deciding   each advocate in turn becomes available (set_state.lua) and
 *              must be offered exactly one call: the populated prefix keeps
 *              every advocate away and every queue full. These round trips
 *              are the decisions, timed one by one and as a phase;
 *   restoring  once every thread has decided for all its advocates, each
 *              advocate's phone "fails" (offer_failed.lua): they go away and
 *              their call is first in line again, so the next round finds
 *              the same work. Not a decision, and not in the decisions' time.
 *
 * The phases do not overlap (a barrier between them), so the decisions' rate
 * is the matcher's alone; the whole run's rate, restoring included, is
 * printed beside it. A round takes up to one call per advocate out of the
 * queues (1,000 of 10,000 in the bench) before putting them back.
 * The scripts' KEYS and ARGV are those of routing/store.py; the key names
 * come from matcher.py (routing/keys.py), never built here.
 *
 * Output on success, on stdout:
 *   decisions <n> seconds <deciding phases> wall <whole run> rounds <r>
 *   <round trip of one decision in nanoseconds>      (n lines)
 * Any error reply, a set_state that does not offer exactly one call, or an
 * offer_failed that offers one: a message on stderr, exit status 1, nothing
 * on stdout. A failed decision is never counted.
 *
 * The Redis password, if any, comes from REDISCLI_AUTH, as for redis-cli,
 * so that it does not show in ps.
 *
 *   cc -std=c11 -O2 -o matcher_driver matcher_driver.c -lhiredis -lpthread
 */

#define _POSIX_C_SOURCE 200809L

#include <getopt.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 512
#define CALL_ID_MAX 128
/* A round trip longer than this is a stuck server, not a slow decision. */
#define REPLY_TIMEOUT_S 10

struct config {
    const char *host;
    int port;
    const char *password;
    double seconds;
    int connections;
    const char *set_state_sha;
    const char *offer_failed_sha;
    const char *prefix;       /* ARGV[1] of both scripts */
    const char *advocate_key; /* advocate hash name without the id */
    const char *call_key;     /* call hash name without the id */
    const char *ringing_key;
    const char *allowed;      /* csv of the states "available" may be entered from */
    char **advocates;
    int advocate_count;
};

/* What the threads share. `deciding`, `deciding_ns` and `rounds` are written by
 * thread 0 only, on the far side of a barrier from every other thread's access. */
struct run {
    pthread_barrier_t barrier;
    uint64_t deadline_ns;
    struct worker *workers;
    int deciding;          /* another round starts */
    uint64_t deciding_ns;  /* the deciding phases, summed */
    int rounds;
};

struct worker {
    const struct config *config;
    struct run *run;
    int first; /* index of this worker's first advocate */
    redisContext *redis;
    char (*calls)[CALL_ID_MAX]; /* the call offered to each of this worker's advocates this round */
    uint64_t *samples_ns;
    size_t count, capacity;
    uint64_t round_started_ns, round_finished_ns; /* this worker's deciding in the current round */
    pthread_t thread;
};

static void die(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs("matcher_driver: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1); /* from any thread: the other decisions in flight do not matter any more */
}

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The scripts take the time from their caller (RoutingStore's clock), in epoch ms. */
static void epoch_ms(char *out, size_t size)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(out, size, "%lld", (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000);
}

static void key(char *out, const char *stem, const char *id)
{
    if (snprintf(out, KEY_MAX, "%s%s", stem, id) >= KEY_MAX)
        die("key name too long: %s%s", stem, id);
}

/* The reply as one line, for error messages. */
static void describe(const redisReply *reply, char *out, size_t size)
{
    if (reply->type != REDIS_REPLY_ARRAY) {
        snprintf(out, size, "%s", reply->str ? reply->str : "(not a string)");
        return;
    }
    size_t used = (size_t)snprintf(out, size, "{");
    for (size_t i = 0; i < reply->elements && used < size; i++) {
        const redisReply *e = reply->element[i];
        used += (size_t)snprintf(out + used, size - used, "%s'%s'", i ? ", " : "",
                                 e->str ? e->str : "?");
    }
    if (used < size)
        snprintf(out + used, size - used, "}");
}

static int is_ok(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
           reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "ok") == 0;
}

/* `script`, `advocate`: what the error message names. */
static redisReply *command(struct worker *w, int argc, const char **argv, const char *script,
                           const char *advocate)
{
    redisReply *reply = redisCommandArgv(w->redis, argc, argv, NULL);
    if (reply == NULL)
        die("%s for advocate %s: %s", script, advocate, w->redis->errstr);
    if (reply->type == REDIS_REPLY_ERROR)
        die("%s for advocate %s: %s", script, advocate, reply->str);
    return reply;
}

/* The call id of an offer, from its JSON (cjson: no spaces, and the bench's ids need no escapes). */
static void offered_call(const char *offer, char *out, size_t size)
{
    static const char field[] = "\"call_id\":\"";
    const char *start = strstr(offer, field);
    if (start == NULL)
        die("no call_id in the offer %s", offer);
    start += strlen(field);
    const char *end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= size)
        die("no call_id in the offer %s", offer);
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
}

static void record(struct worker *w, uint64_t sample)
{
    if (w->count == w->capacity) {
        w->capacity = w->capacity ? 2 * w->capacity : 65536;
        w->samples_ns = realloc(w->samples_ns, w->capacity * sizeof *w->samples_ns);
        if (w->samples_ns == NULL)
            die("out of memory for %zu samples", w->capacity);
    }
    w->samples_ns[w->count++] = sample;
}

/* One decision: `advocate` becomes available and is offered one call, whose id goes to `call_id`. */
static void decide(struct worker *w, const char *advocate, char *call_id)
{
    const struct config *c = w->config;
    char advocate_key[KEY_MAX], now[24], text[1024];

    key(advocate_key, c->advocate_key, advocate);
    epoch_ms(now, sizeof now);
    const char *set_state[] = {"EVALSHA", c->set_state_sha, "1", advocate_key,
                               c->prefix, advocate, "available", c->allowed, now};
    uint64_t started = monotonic_ns();
    redisReply *offers = command(w, 9, set_state, "set_state", advocate);
    uint64_t took = monotonic_ns() - started;
    if (!is_ok(offers) || offers->elements != 2 || offers->element[1]->type != REDIS_REPLY_STRING) {
        describe(offers, text, sizeof text);
        die("advocate %s became available and got %s, not one offer", advocate, text);
    }
    offered_call(offers->element[1]->str, call_id, CALL_ID_MAX);
    freeReplyObject(offers);
    record(w, took);
}

/* `advocate`'s phone fails: away again, and `call_id` back at the head of its queue. */
static void restore(struct worker *w, const char *advocate, const char *call_id)
{
    const struct config *c = w->config;
    char advocate_key[KEY_MAX], call_key[KEY_MAX], now[24], text[1024];

    key(advocate_key, c->advocate_key, advocate);
    key(call_key, c->call_key, call_id);
    epoch_ms(now, sizeof now);
    const char *offer_failed[] = {"EVALSHA", c->offer_failed_sha, "3", advocate_key, call_key,
                                  c->ringing_key, c->prefix, call_id, advocate, now};
    redisReply *restored = command(w, 10, offer_failed, "offer_failed", advocate);
    /* Nobody else is ever available, so the call going back must not be offered. */
    if (!is_ok(restored) || restored->elements != 1) {
        describe(restored, text, sizeof text);
        die("offer_failed of call %s to %s replied %s, not {'ok'}", call_id, advocate, text);
    }
    freeReplyObject(restored);
}

static void *drive(void *arg)
{
    struct worker *w = arg;
    const struct config *c = w->config;
    struct run *run = w->run;
    for (;;) {
        if (w->first == 0)
            run->deciding = monotonic_ns() < run->deadline_ns;
        /* Every thread has put its calls back: none of that is in the round's time. */
        pthread_barrier_wait(&run->barrier);
        if (!run->deciding)
            return NULL;
        w->round_started_ns = monotonic_ns();
        for (int i = w->first, j = 0; i < c->advocate_count; i += c->connections, j++)
            decide(w, c->advocates[i], w->calls[j]);
        w->round_finished_ns = monotonic_ns();
        pthread_barrier_wait(&run->barrier);
        if (w->first == 0) {
            /* The round: from the first thread's first decision to the last one's last. */
            uint64_t first = UINT64_MAX, last = 0;
            for (int k = 0; k < c->connections; k++) {
                if (run->workers[k].round_started_ns < first)
                    first = run->workers[k].round_started_ns;
                if (run->workers[k].round_finished_ns > last)
                    last = run->workers[k].round_finished_ns;
            }
            run->deciding_ns += last - first;
            run->rounds++;
        }
        for (int i = w->first, j = 0; i < c->advocate_count; i += c->connections, j++)
            restore(w, c->advocates[i], w->calls[j]);
    }
}

static redisContext *connect_to(const struct config *c)
{
    struct timeval timeout = {REPLY_TIMEOUT_S, 0};
    redisContext *redis = redisConnectWithTimeout(c->host, c->port, timeout);
    if (redis == NULL || redis->err)
        die("cannot connect to %s:%d: %s", c->host, c->port, redis ? redis->errstr : "out of memory");
    redisSetTimeout(redis, timeout);
    if (c->password) {
        redisReply *reply = redisCommand(redis, "AUTH %s", c->password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
            die("AUTH: %s", reply ? reply->str : redis->errstr);
        freeReplyObject(reply);
    }
    return redis;
}

static void usage(void)
{
    fputs("usage: matcher_driver --host H --port P --seconds S --connections N\n"
          "         --set-state SHA --offer-failed SHA --prefix P --advocate-key STEM\n"
          "         --call-key STEM --ringing-key KEY --allowed CSV ADVOCATE_ID...\n"
          "  (Redis password, if any, in REDISCLI_AUTH)\n", stderr);
    exit(2);
}

static struct config parse(int argc, char **argv)
{
    static const struct option options[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"seconds", required_argument, NULL, 's'},
        {"connections", required_argument, NULL, 'c'},
        {"set-state", required_argument, NULL, 'S'},
        {"offer-failed", required_argument, NULL, 'F'},
        {"prefix", required_argument, NULL, 'P'},
        {"advocate-key", required_argument, NULL, 'A'},
        {"call-key", required_argument, NULL, 'C'},
        {"ringing-key", required_argument, NULL, 'R'},
        {"allowed", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    struct config c = {.host = "127.0.0.1", .port = 6379, .connections = 1};
    c.password = getenv("REDISCLI_AUTH");
    for (int opt; (opt = getopt_long(argc, argv, "", options, NULL)) != -1; ) {
        switch (opt) {
        case 'h': c.host = optarg; break;
        case 'p': c.port = atoi(optarg); break;
        case 's': c.seconds = atof(optarg); break;
        case 'c': c.connections = atoi(optarg); break;
        case 'S': c.set_state_sha = optarg; break;
        case 'F': c.offer_failed_sha = optarg; break;
        case 'P': c.prefix = optarg; break;
        case 'A': c.advocate_key = optarg; break;
        case 'C': c.call_key = optarg; break;
        case 'R': c.ringing_key = optarg; break;
        case 'a': c.allowed = optarg; break;
        default: usage();
        }
    }
    c.advocates = argv + optind;
    c.advocate_count = argc - optind;
    if (!c.set_state_sha || !c.offer_failed_sha || !c.prefix || !c.advocate_key || !c.call_key ||
        !c.ringing_key || !c.allowed || c.seconds <= 0 || c.port <= 0)
        usage();
    /* Two threads must never drive the same advocate: its state would race. */
    if (c.connections < 1 || c.connections > c.advocate_count)
        die("%d connections for %d advocates: each connection needs advocates of its own",
            c.connections, c.advocate_count);
    return c;
}

int main(int argc, char **argv)
{
    struct config config = parse(argc, argv);
    struct worker *workers = calloc((size_t)config.connections, sizeof *workers);
    if (workers == NULL)
        die("out of memory");
    struct run run = {.workers = workers};
    if (pthread_barrier_init(&run.barrier, NULL, (unsigned)config.connections) != 0)
        die("cannot make a barrier for %d threads", config.connections);
    /* Advocates per worker, rounded up: worker i has advocates i, i + connections, ... */
    size_t per_worker = (size_t)(config.advocate_count + config.connections - 1) / (size_t)config.connections;
    for (int i = 0; i < config.connections; i++) {
        workers[i] = (struct worker){.config = &config, .run = &run, .first = i, .redis = connect_to(&config),
                                     .calls = calloc(per_worker, CALL_ID_MAX)};
        if (workers[i].calls == NULL)
            die("out of memory");
    }

    /* Every connection is up before the clock starts: connecting is not deciding. */
    uint64_t started = monotonic_ns();
    run.deadline_ns = started + (uint64_t)(config.seconds * 1e9);
    for (int i = 0; i < config.connections; i++) {
        if (pthread_create(&workers[i].thread, NULL, drive, &workers[i]) != 0)
            die("cannot start thread %d", i);
    }
    size_t decisions = 0;
    for (int i = 0; i < config.connections; i++) {
        pthread_join(workers[i].thread, NULL);
        decisions += workers[i].count;
    }
    double elapsed = (double)(monotonic_ns() - started) / 1e9;

    printf("decisions %zu seconds %.6f wall %.6f rounds %d\n", decisions, (double)run.deciding_ns / 1e9,
           elapsed, run.rounds);
    for (int i = 0; i < config.connections; i++) {
        for (size_t j = 0; j < workers[i].count; j++)
            printf("%llu\n", (unsigned long long)workers[i].samples_ns[j]);
        redisFree(workers[i].redis);
        free(workers[i].samples_ns);
        free(workers[i].calls);
    }
    free(workers);
    pthread_barrier_destroy(&run.barrier);
    return 0;
}

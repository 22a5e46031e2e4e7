/* kv: a key-value service with a JSON API, written on preforkd.h. The
 * example that README's "Writing handlers" walks through: CRUD routes with
 * a path parameter, strict validation with clear 4xx answers, data shared
 * by every worker under a robust lock, blocking work on the pool (a pool
 * handler, and pfd_async from an inline one), and the application's hooks.
 *
 *   GET    /kv                 {"count": N, "keys": [...]} in byte order; ?prefix=P
 *   GET    /kv/{key}           {"key": K, "value": V}, or 404
 *   PUT    /kv/{key}           {"value": V} sets it: 201 when new, 200 when replaced
 *   POST   /kv/{key}           {"value": V} creates it: 201, or 409 when it exists
 *   DELETE /kv/{key}           204, or 404
 *   GET    /kv/_stats          counters: requests, writes, hooks, workers
 *   GET    /kv/_digest         SHA-256 of the table, computed on the pool (pfd_async)
 *   POST   /kv/_snapshot       writes the table to the snapshot file (a pool handler)
 *
 * A key is 1 to 64 bytes of A-Z a-z 0-9 - . _ and starts with a letter or a
 * digit ("_stats" and the like are the service's own). A value is a JSON
 * string of up to 4096 bytes (UTF-8, decoded). Bodies are {"value": "..."}
 * and nothing else, with Content-Type: application/json.
 *
 * The table lives in one region of shared memory that the master makes in
 * the init hook, before it forks the workers: every worker sees the same
 * bytes, and the region outlives reloads. Its size is fixed: 1025 slots of
 * a 64-byte key and a 4 KiB value, 4.2 MiB whatever the load. A process-
 * shared robust lock guards it. Inline handlers hold it for the copy of one
 * value; the snapshot and the digest (on the pool) for a copy of the table.
 * A worker that dies holding it (a crash, SIGKILL) leaves the lock to the
 * next locker with PFD_LOCK_RECOVERED: that one repairs the table (below)
 * before it goes on, logs it, and says so in its answer (X-KV-Recovered).
 * A write is made so that a death at any point leaves the old value or the
 * new one, never half of one.
 *
 * The route of /kv/_snapshot names the file (snapshot = PATH, relative to
 * the config file's folder; kv-snapshot.json by default). It is written to
 * a temporary file, synced and renamed over the old one; when the server
 * starts, the first worker loads it into the empty table.
 *
 * Built as a program of its own (main.c: pfd_main with this app) or as a
 * module of the stock binary (the same file: the symbol preforkd_module).
 * kv.conf is its configuration. By hand:
 *
 *   cc -shared -fPIC -o kv.so kv.c                      (preforkd.h on the include path)
 *   cc -o kv-server kv.c main.c $(pkg-config --cflags --libs preforkd)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <preforkd.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KV_KEYS      1024          /* keys the table holds */
#define KV_KEY_MAX   64            /* bytes of a key */
#define KV_VALUE_MAX 4096          /* bytes of a value, decoded */
#define KV_SLOTS     (KV_KEYS + 1) /* a spare: a replacement is written beside the old copy */
#define KV_BODY_MAX  (6 * KV_VALUE_MAX + 256) /* a body: the value, each byte maybe \u-escaped */
#define KV_WORKERS   64                    /* worker positions counted one by one in /kv/_stats */
#define KV_FILE_MAX  (64u << 20)           /* a snapshot file we agree to read */
#define KV_MAGIC     0x6b762d7461626c65ull /* "kv-table": the lock is made */

/* ---- the shared table ---------------------------------------------------- */

enum { SLOT_FREE, SLOT_USED, SLOT_BUSY /* being written */ };

/* What a lookup reads of a slot: 16 bytes, so a scan of every slot reads
 * 16 KiB, not the 4 MiB of keys and values. */
struct kv_meta {
    _Atomic unsigned char state; /* stored last (release): the slot is whole when USED */
    unsigned char klen;
    unsigned short vlen;
    uint32_t hash;    /* of the key */
    uint64_t version; /* the table's write count when written: the newest copy wins */
};

/* Counters of one worker position (pfd_app.worker_init's index). */
struct kv_worker {
    _Atomic int pid; /* the last worker at that position */
    _Atomic uint64_t requests;
};

struct kv_table {
    uint64_t magic; /* set once the lock is made: a reload's init finds it made */
    pfd_lock lock;
    _Atomic int loaded; /* the snapshot was read (at the first start) */
    /* Under the lock. Atomic only so that /kv/_stats may read them without
     * it; they are changed with a load and a store (locked_add), which
     * would lose updates if the lock ever let two writers in. */
    _Atomic uint32_t count;
    _Atomic uint64_t writes, recoveries;
    _Atomic int last_recovery_pid;
    _Atomic uint32_t last_recovery_dropped;
    struct kv_meta meta[KV_SLOTS];
    char keys[KV_SLOTS][KV_KEY_MAX];
    char values[KV_SLOTS][KV_VALUE_MAX];
    /* Lock-free counters. */
    _Atomic uint64_t requests; /* requests the app's handlers served, all workers */
    _Atomic uint64_t inits, worker_inits, worker_exits, thread_inits, thread_exits;
    struct kv_worker workers[KV_WORKERS];
};

/* Set by the init hook in the master; the workers inherit it with the
 * mapping. */
static struct kv_table *table;
/* This worker's position (worker_init). */
static unsigned worker_index = KV_WORKERS;

static void locked_add(_Atomic uint64_t *v, uint64_t n) {
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void locked_set_count(struct kv_table *t, uint32_t n) {
    atomic_store_explicit(&t->count, n, memory_order_relaxed);
}

static uint32_t count_of(struct kv_table *t) {
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

static uint32_t key_hash(const char *key, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

static int slot_state(const struct kv_table *t, int i) {
    return atomic_load_explicit(&t->meta[i].state, memory_order_acquire);
}

/* The slot holding key, or -1. Under the lock. */
static int find(const struct kv_table *t, const char *key, size_t klen) {
    uint32_t h = key_hash(key, klen);
    for (int i = 0; i < KV_SLOTS; i++) {
        const struct kv_meta *m = &t->meta[i];
        if (m->hash == h && m->klen == klen && slot_state(t, i) == SLOT_USED &&
            memcmp(t->keys[i], key, klen) == 0)
            return i;
    }
    return -1;
}

static int find_free(const struct kv_table *t) {
    for (int i = 0; i < KV_SLOTS; i++)
        if (slot_state(t, i) == SLOT_FREE) return i;
    return -1;
}

/* Fills a free slot with key and the first vlen bytes of value, marked
 * BUSY: lookups pass it by until put() marks it USED. Under the lock. */
static int put_begin(struct kv_table *t, const char *key, size_t klen, const char *value,
                     size_t vlen) {
    int s = find_free(t); /* there is one: at most KV_KEYS are used, one may be BUSY */
    if (s < 0) return -1;
    struct kv_meta *m = &t->meta[s];
    atomic_store_explicit(&m->state, SLOT_BUSY, memory_order_relaxed);
    memcpy(t->keys[s], key, klen);
    memcpy(t->values[s], value, vlen);
    m->klen = (unsigned char)klen;
    m->vlen = (unsigned short)vlen;
    m->hash = key_hash(key, klen);
    locked_add(&t->writes, 1);
    m->version = atomic_load_explicit(&t->writes, memory_order_relaxed);
    return s;
}

/* key = value, replacing the copy in slot old (or -1). The new copy is
 * whole before it is marked USED, and the old one is freed only then: a
 * worker dying in between leaves a BUSY slot (dropped by the repair: the
 * old value stays) or two copies (the repair keeps the newer). Under the
 * lock; -1 when the table is full. */
static int put(struct kv_table *t, const char *key, size_t klen, const char *value, size_t vlen,
               int old) {
    if (old < 0 && count_of(t) >= KV_KEYS) return -1;
    int s = put_begin(t, key, klen, value, vlen);
    if (s < 0) return -1;
    atomic_store_explicit(&t->meta[s].state, SLOT_USED, memory_order_release);
    if (old >= 0)
        atomic_store_explicit(&t->meta[old].state, SLOT_FREE, memory_order_release);
    else
        locked_set_count(t, count_of(t) + 1);
    return s;
}

static void del(struct kv_table *t, int s) {
    atomic_store_explicit(&t->meta[s].state, SLOT_FREE, memory_order_release);
    locked_set_count(t, count_of(t) - 1);
    locked_add(&t->writes, 1);
}

/* ---- keys and JSON ------------------------------------------------------ */

/* Whether key (or a prefix of keys) is one; otherwise why not, in msg,
 * which names it what ("key", "prefix"). The message is ASCII: the key is
 * not echoed, it may be any bytes. */
static bool name_ok(const char *what, const char *key, size_t len, char *msg, size_t msglen) {
    if (len == 0 || len > KV_KEY_MAX) {
        snprintf(msg, msglen, "%s: %zu bytes, not 1 to %d", what, len, KV_KEY_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (alnum || (i > 0 && (c == '-' || c == '.' || c == '_'))) continue;
        if (c > 0x20 && c < 0x7f)
            snprintf(msg, msglen, "%s: '%c' at byte %zu is not allowed (%s)", what, c, i + 1,
                     i ? "A-Z a-z 0-9 - . _" : "a key starts with a letter or a digit");
        else
            snprintf(msg, msglen, "%s: byte %zu (0x%02x) is not allowed (A-Z a-z 0-9 - . _)", what,
                     i + 1, c);
        return false;
    }
    return true;
}

static bool key_ok(const char *key, size_t len, char *msg, size_t msglen) {
    return name_ok("key", key, len, msg, msglen);
}

/* A strict reader of RFC 8259 JSON text, for what this service reads: an
 * object whose members are strings. */
struct json {
    const char *start, *p, *end;
    char err[96];
};

static int json_fail(struct json *j, const char *what) {
    if (!j->err[0])
        snprintf(j->err, sizeof j->err, "malformed JSON at byte %zu: %s",
                 (size_t)(j->p - j->start) + 1, what);
    return -1;
}

static void json_ws(struct json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool json_eat(struct json *j, char c) {
    json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* Nothing but whitespace after the object. */
static bool json_at_end(struct json *j) {
    json_ws(j);
    if (j->p == j->end) return true;
    json_fail(j, "text after the object");
    return false;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

/* The length of the UTF-8 sequence at p (1 to 4), or 0 when it is none
 * (overlong forms, surrogates and code points past U+10FFFF are none). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    size_t n = p[0] < 0x80                    ? 1
               : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
               : (p[0] & 0xf0) == 0xe0        ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    if (!n || (size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

static size_t utf8_put(char *out, unsigned cp) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 63));
        out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 63));
    out[2] = (char)(0x80 | ((cp >> 6) & 63));
    out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A string at j->p, decoded into out (UTF-8, at most cap bytes). 0; -1
 * when malformed (j->err); -2 when longer than cap. */
static int json_string(struct json *j, char *out, size_t cap, size_t *len) {
    json_ws(j);
    if (j->p >= j->end || *j->p != '"') return json_fail(j, "expected a string");
    j->p++;
    size_t n = 0;
    for (;;) {
        if (j->p >= j->end) return json_fail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        char buf[4];
        size_t k;
        if (c == '"') {
            j->p++;
            *len = n;
            return 0;
        } else if (c < 0x20) {
            return json_fail(j, "a control character in a string (escape it)");
        } else if (c == '\\') {
            if (j->end - j->p < 2) return json_fail(j, "unterminated string");
            char e = j->p[1];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *at = strchr(from, e);
            if (e && at) {
                buf[0] = to[at - from];
                k = 1;
                j->p += 2;
            } else if (e == 'u') {
                int cp = j->end - j->p >= 6 ? hex4(j->p + 2) : -1;
                if (cp < 0) return json_fail(j, "\\u needs four hex digits");
                j->p += 6;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    j->p -= 6;
                    return json_fail(j, "a low surrogate without a high one");
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u'
                                 ? hex4(j->p + 2)
                                 : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return json_fail(j, "a high surrogate without a low one");
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                k = utf8_put(buf, (unsigned)cp);
            } else {
                return json_fail(j, "an unknown escape");
            }
        } else {
            k = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
            if (!k) return json_fail(j, "not UTF-8");
            memcpy(buf, j->p, k);
            j->p += k;
        }
        if (n + k > cap) return -2;
        memcpy(out + n, buf, k);
        n += k;
    }
}

/* A request body {"value": "..."}: 0 with the value in out (KV_VALUE_MAX
 * bytes), or the status to answer (400, 413) with why in msg. */
static int parse_body(pfd_str body, char *out, size_t *vlen, char *msg, size_t msglen) {
    struct json j = {.start = body.p, .p = body.p, .end = body.p + body.len};
    bool have = false;
    if (body.len == 0) {
        snprintf(msg, msglen, "no body: send {\"value\": \"...\"}");
        return 400;
    }
    if (!json_eat(&j, '{')) {
        json_fail(&j, "expected '{'");
        goto malformed;
    }
    if (!json_eat(&j, '}')) {
        do {
            char name[8];
            size_t nlen;
            json_ws(&j);
            const char *at = j.p;
            int rc = json_string(&j, name, sizeof name, &nlen);
            if (rc == -1) goto malformed;
            if (rc == -2 || nlen != 5 || memcmp(name, "value", 5) != 0) {
                snprintf(msg, msglen,
                         "unknown member at byte %zu: the body is {\"value\": \"...\"}",
                         (size_t)(at - body.p) + 1);
                return 400;
            }
            if (have) {
                snprintf(msg, msglen, "\"value\" given twice");
                return 400;
            }
            if (!json_eat(&j, ':')) {
                json_fail(&j, "expected ':'");
                goto malformed;
            }
            json_ws(&j);
            if (j.p < j.end && *j.p != '"') {
                snprintf(msg, msglen, "\"value\" must be a string");
                return 400;
            }
            rc = json_string(&j, out, KV_VALUE_MAX, vlen);
            if (rc == -1) goto malformed;
            if (rc == -2) {
                snprintf(msg, msglen, "value: longer than %d bytes", KV_VALUE_MAX);
                return 413;
            }
            have = true;
        } while (json_eat(&j, ','));
        if (!json_eat(&j, '}')) {
            json_fail(&j, "expected ',' or '}'");
            goto malformed;
        }
    }
    if (!json_at_end(&j)) goto malformed;
    if (!have) {
        snprintf(msg, msglen, "missing \"value\": send {\"value\": \"...\"}");
        return 400;
    }
    return 0;
malformed:
    snprintf(msg, msglen, "%s", j.err);
    return 400;
}

/* Whether t is application/json, with no charset but UTF-8's. */
static bool json_type(pfd_str t) {
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    if (!t.p || t.len < n || strncasecmp(t.p, want, n) != 0) return false;
    const char *p = t.p + n, *end = t.p + t.len;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p == end) return true;
    if (*p != ';') return false;
    /* parameters: only charset means something here */
    for (const char *q = p; q + 8 <= end; q++)
        if (strncasecmp(q, "charset=", 8) == 0) {
            q += 8;
            if (q < end && *q == '"') q++;
            return end - q >= 5 && strncasecmp(q, "utf-8", 5) == 0;
        }
    return true;
}

/* ---- answers ------------------------------------------------------------- */

/* {"error": msg} with status: msg is written as a JSON string, whatever it
 * holds. */
static int answer_error(pfd_req *r, int status, const char *msg) {
    if (!msg) return PFD_ERROR; /* pfd_sprintf: out of memory */
    pfd_status(r, status);
    pfd_content_type(r, "application/json");
    pfd_write(r, "{\"error\": ", 10);
    pfd_write_json_string(r, msg, strlen(msg));
    return pfd_write(r, "}\n", 2);
}

static void count_request(void) {
    atomic_fetch_add_explicit(&table->requests, 1, memory_order_relaxed);
    if (worker_index < KV_WORKERS)
        atomic_fetch_add_explicit(&table->workers[worker_index].requests, 1, memory_order_relaxed);
}

/* ---- the lock and the repair --------------------------------------------- */

/* After a worker died holding the lock: whatever it left half done goes.
 * A BUSY slot is a write that did not finish (the old copy, if any, is
 * still there); a USED slot that does not hold together (its length, its
 * key, its hash) is dropped; of two copies of a key the newer stays.
 * The count is counted again. Returns the slots dropped. Under the lock. */
static unsigned repair(struct kv_table *t) {
    unsigned dropped = 0, used = 0;
    uint64_t newest = 0;
    char why[96];
    for (int i = 0; i < KV_SLOTS; i++) {
        struct kv_meta *m = &t->meta[i];
        int st = slot_state(t, i);
        if (st == SLOT_FREE) continue;
        if (st != SLOT_USED || m->vlen > KV_VALUE_MAX ||
            !key_ok(t->keys[i], m->klen, why, sizeof why) ||
            m->hash != key_hash(t->keys[i], m->klen)) {
            atomic_store_explicit(&m->state, SLOT_FREE, memory_order_relaxed);
            dropped++;
        }
    }
    for (int i = 0; i < KV_SLOTS; i++) {
        struct kv_meta *m = &t->meta[i];
        if (slot_state(t, i) != SLOT_USED) continue;
        for (int k = i + 1; k < KV_SLOTS; k++) {
            struct kv_meta *o = &t->meta[k];
            if (slot_state(t, k) != SLOT_USED || o->hash != m->hash || o->klen != m->klen ||
                memcmp(t->keys[k], t->keys[i], m->klen) != 0)
                continue;
            int older = o->version < m->version ? k : i;
            atomic_store_explicit(&t->meta[older].state, SLOT_FREE, memory_order_relaxed);
            dropped++;
            if (older == i) break;
        }
        if (slot_state(t, i) == SLOT_USED) {
            used++;
            if (m->version > newest) newest = m->version;
        }
    }
    locked_set_count(t, used);
    if (atomic_load_explicit(&t->writes, memory_order_relaxed) < newest)
        atomic_store_explicit(&t->writes, newest, memory_order_relaxed);
    locked_add(&t->recoveries, 1);
    atomic_store_explicit(&t->last_recovery_pid, getpid(), memory_order_relaxed);
    atomic_store_explicit(&t->last_recovery_dropped, dropped, memory_order_relaxed);
    pfd_log_warn("kv: a worker died holding the table's lock: repaired in worker %d "
                 "(%u half-done write(s) dropped, %u keys)",
                 (int)getpid(), dropped, used);
    return dropped;
}

/* Takes the table's lock: 0; 1 when its holder had died and the table was
 * repaired, *dropped slots with it (say so: recovered()); -1 when it
 * cannot be taken. */
static int lock_table(unsigned *dropped) {
    int rc = pfd_lock_acquire(&table->lock);
    if (rc == PFD_LOCK_RECOVERED) {
        *dropped = repair(table);
        return 1;
    }
    return rc < 0 ? -1 : 0;
}

static void unlock_table(void) {
    pfd_lock_release(&table->lock);
}

/* An answer from the locker that repaired the table says so. */
static void recovered(pfd_req *r, unsigned dropped) {
    pfd_header_addf(r, "X-KV-Recovered",
                    "a worker died holding the lock; %u half-done write(s) dropped", dropped);
}

/* Takes the lock for request r: 0, or -1 with the answer set (503). */
static int lock_for(pfd_req *r) {
    unsigned dropped = 0;
    int rc = lock_table(&dropped);
    if (rc == 1) recovered(r, dropped);
    if (rc < 0) {
        answer_error(r, 503, "the table's lock cannot be taken");
        return -1;
    }
    return 0;
}

/* ---- the table, copied out (snapshot, digest) ----------------------------- */

struct kv_entry {
    unsigned char klen;
    unsigned short vlen;
    char key[KV_KEY_MAX];
    char value[KV_VALUE_MAX];
};

struct kv_copy {
    size_t n;
    int recovered;    /* the copy's locker repaired the table */
    unsigned dropped; /* what the repair dropped */
    struct kv_entry **sorted;
    struct kv_entry entries[];
};

/* Byte order, a prefix first. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int entry_order(const void *a, const void *b) {
    const struct kv_entry *x = *(struct kv_entry *const *)a, *y = *(struct kv_entry *const *)b;
    return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* Every key and value, in key order, in malloc'd memory: the lock is held
 * for the copy only, the slow part (writing, hashing) works on the copy.
 * NULL when out of memory or the lock is broken. Blocks: pool threads. */
static struct kv_copy *copy_table(void) {
    struct kv_copy *c = malloc(sizeof *c + KV_KEYS * sizeof(struct kv_entry));
    struct kv_entry **sorted = malloc(KV_KEYS * sizeof *sorted);
    unsigned dropped = 0;
    int rc = c && sorted ? lock_table(&dropped) : -1;
    if (rc < 0) {
        free(c);
        free(sorted);
        return NULL;
    }
    c->n = 0;
    c->recovered = rc;
    c->dropped = dropped;
    c->sorted = sorted;
    for (int i = 0; i < KV_SLOTS && c->n < KV_KEYS; i++) {
        if (slot_state(table, i) != SLOT_USED) continue;
        struct kv_entry *e = &c->entries[c->n];
        e->klen = table->meta[i].klen;
        e->vlen = table->meta[i].vlen;
        memcpy(e->key, table->keys[i], e->klen);
        memcpy(e->value, table->values[i], e->vlen);
        sorted[c->n++] = e;
    }
    unlock_table();
    qsort(sorted, c->n, sizeof *sorted, entry_order);
    return c;
}

static void copy_free(struct kv_copy *c) {
    if (!c) return;
    free(c->sorted);
    free(c);
}

/* ---- GET /kv --------------------------------------------------------------- */

struct key_ref {
    unsigned char len;
    char key[KV_KEY_MAX];
};

static int key_ref_order(const void *a, const void *b) {
    const struct key_ref *x = a, *y = b;
    return key_cmp(x->key, x->len, y->key, y->len);
}

/* Inline: the keys are copied under the lock (64 KiB at most), sorted and
 * written after it. */
static int kv_list(pfd_req *r) {
    count_request();
    enum pfd_method m = pfd_method_id(r);
    if (m != PFD_GET && m != PFD_HEAD) {
        answer_error(r, 405, "GET or HEAD");
        return pfd_header_add(r, "Allow", "GET, HEAD");
    }
    pfd_str prefix;
    int found = pfd_query_param(r, "prefix", &prefix);
    char why[128];
    if (found < 0) return answer_error(r, 400, "prefix: a broken %-encoding");
    if (found == 0) prefix = (pfd_str){"", 0}; /* p is NULL when absent */
    if (prefix.len && !name_ok("prefix", prefix.p, prefix.len, why, sizeof why))
        return answer_error(r, 400, why);
    struct key_ref *keys = pfd_alloc(r, KV_KEYS * sizeof *keys);
    if (!keys) return PFD_ERROR;
    size_t n = 0;
    if (lock_for(r) < 0) return PFD_OK;
    for (int i = 0; i < KV_SLOTS && n < KV_KEYS; i++) {
        const struct kv_meta *meta = &table->meta[i];
        if (slot_state(table, i) != SLOT_USED || meta->klen < prefix.len ||
            memcmp(table->keys[i], prefix.p, prefix.len) != 0)
            continue;
        keys[n].len = meta->klen;
        memcpy(keys[n].key, table->keys[i], meta->klen);
        n++;
    }
    unlock_table();
    qsort(keys, n, sizeof *keys, key_ref_order);
    pfd_content_type(r, "application/json");
    pfd_printf(r, "{\"count\": %zu, \"keys\": [", n);
    for (size_t i = 0; i < n; i++) {
        if (i) pfd_write(r, ", ", 2);
        pfd_write_json_string(r, keys[i].key, keys[i].len);
    }
    return pfd_write(r, "]}\n", 3);
}

/* ---- /kv/{key} ------------------------------------------------------------- */

static int item_get(pfd_req *r, pfd_str key) {
    char *value = pfd_alloc(r, KV_VALUE_MAX);
    if (!value) return PFD_ERROR;
    if (lock_for(r) < 0) return PFD_OK;
    int s = find(table, key.p, key.len);
    size_t vlen = s >= 0 ? table->meta[s].vlen : 0;
    if (s >= 0) memcpy(value, table->values[s], vlen);
    unlock_table();
    if (s < 0) return answer_error(r, 404, pfd_sprintf(r, "no key \"%.*s\"", (int)key.len, key.p));
    pfd_content_type(r, "application/json");
    pfd_write(r, "{\"key\": ", 8);
    pfd_write_json_string(r, key.p, key.len);
    pfd_write(r, ", \"value\": ", 11);
    pfd_write_json_string(r, value, vlen);
    return pfd_write(r, "}\n", 2);
}

/* PUT (create or replace) and POST (create only). */
static int item_put(pfd_req *r, pfd_str key, bool create) {
    char msg[160];
    if (!json_type(pfd_field(r, PFD_F_CONTENT_TYPE)))
        return answer_error(r, 415, "Content-Type: send application/json (UTF-8)");
    pfd_str body = pfd_body(r);
    if (body.len > KV_BODY_MAX) {
        snprintf(msg, sizeof msg, "body: longer than %d bytes", KV_BODY_MAX);
        return answer_error(r, 413, msg);
    }
    char *value = pfd_alloc(r, KV_VALUE_MAX);
    size_t vlen = 0;
    if (!value) return PFD_ERROR;
    int status = parse_body(body, value, &vlen, msg, sizeof msg);
    if (status) return answer_error(r, status, msg);

    if (lock_for(r) < 0) return PFD_OK;
    int old = find(table, key.p, key.len);
    int s = -2;
    if (!(create && old >= 0)) s = put(table, key.p, key.len, value, vlen, old);
    unlock_table();
    if (s == -2)
        return answer_error(r, 409, pfd_sprintf(r, "key \"%.*s\" exists", (int)key.len, key.p));
    if (s < 0) {
        snprintf(msg, sizeof msg, "the table is full (%d keys)", KV_KEYS);
        return answer_error(r, 507, msg);
    }
    pfd_status(r, old < 0 ? 201 : 200);
    if (old < 0) pfd_header_addf(r, "Location", "/kv/%.*s", (int)key.len, key.p);
    pfd_content_type(r, "application/json");
    pfd_write(r, "{\"key\": ", 8);
    pfd_write_json_string(r, key.p, key.len);
    return pfd_printf(r, ", \"created\": %s}\n", old < 0 ? "true" : "false");
}

static int item_delete(pfd_req *r, pfd_str key) {
    if (lock_for(r) < 0) return PFD_OK;
    int s = find(table, key.p, key.len);
    if (s >= 0) del(table, s);
    unlock_table();
    if (s < 0) return answer_error(r, 404, pfd_sprintf(r, "no key \"%.*s\"", (int)key.len, key.p));
    pfd_status(r, 204);
    return PFD_OK;
}

/* GET, HEAD, PUT, POST, DELETE /kv/{key}. Inline: the lock is held for
 * the copy of one value. */
static int kv_item(pfd_req *r) {
    count_request();
    pfd_str key = pfd_path_param(r, "key"); /* decoded; the key is checked before any use */
    char why[128];
    if (!key.p) return answer_error(r, 500, "the route has no {key}");
    if (!key_ok(key.p, key.len, why, sizeof why)) return answer_error(r, 400, why);
    switch (pfd_method_id(r)) {
    case PFD_GET:
    case PFD_HEAD: return item_get(r, key);
    case PFD_PUT: return item_put(r, key, false);
    case PFD_POST: return item_put(r, key, true);
    case PFD_DELETE: return item_delete(r, key);
    default:
        /* kv.conf's methods setting answers this before the handler runs */
        answer_error(r, 405, "GET, HEAD, PUT, POST or DELETE");
        return pfd_header_add(r, "Allow", "GET, HEAD, POST, PUT, DELETE");
    }
}

/* ---- GET /kv/_stats -------------------------------------------------------- */

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* No lock: what it reads is atomic, so it answers even while a writer is
 * stuck. */
static int kv_stats(pfd_req *r) {
    count_request();
    struct kv_table *t = table;
    pfd_content_type(r, "application/json");
    pfd_printf(r, "{\"requests\": %llu, \"keys\": %u, \"capacity\": %d, \"shared_bytes\": %zu,\n",
               (unsigned long long)LOAD(t->requests), (unsigned)LOAD(t->count), KV_KEYS, sizeof *t);
    pfd_printf(r,
               " \"writes\": %llu, \"recoveries\": %llu, \"last_recovery_pid\": %d, "
               "\"last_recovery_dropped\": %u,\n",
               (unsigned long long)LOAD(t->writes), (unsigned long long)LOAD(t->recoveries),
               LOAD(t->last_recovery_pid), (unsigned)LOAD(t->last_recovery_dropped));
    pfd_printf(r,
               " \"hooks\": {\"init\": %llu, \"worker_init\": %llu, \"worker_exit\": %llu, "
               "\"thread_init\": %llu, \"thread_exit\": %llu},\n",
               (unsigned long long)LOAD(t->inits), (unsigned long long)LOAD(t->worker_inits),
               (unsigned long long)LOAD(t->worker_exits), (unsigned long long)LOAD(t->thread_inits),
               (unsigned long long)LOAD(t->thread_exits));
    pfd_printf(r, " \"worker\": {\"index\": %u, \"pid\": %d},\n \"workers\": [", worker_index,
               (int)getpid());
    for (unsigned i = 0, n = 0; i < KV_WORKERS; i++) {
        int pid = LOAD(t->workers[i].pid);
        if (!pid) continue;
        pfd_printf(r, "%s{\"index\": %u, \"pid\": %d, \"requests\": %llu}", n++ ? ", " : "", i, pid,
                   (unsigned long long)LOAD(t->workers[i].requests));
    }
    return pfd_write(r, "]}\n", 3);
}

/* ---- GET /kv/_digest: pfd_async ------------------------------------------- */

/* SHA-256 (FIPS 180-4). */
struct sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
};

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) {
    return x >> n | x << (32 - n);
}

static void sha256_block(struct sha256 *s, const unsigned char *p) {
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
        uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) s->h[i] += v[i];
}

static void sha256_init(struct sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->n = 0;
}

static void sha256_add(struct sha256 *s, const void *data, size_t len) {
    const unsigned char *p = data;
    s->len += len;
    while (len) {
        size_t k = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, k);
        s->n += k;
        p += k;
        len -= k;
        if (s->n == 64) {
            sha256_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void sha256_end(struct sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->len * 8;
    unsigned char pad[72] = {0x80};
    size_t padlen = (s->n < 56 ? 56 : 120) - s->n;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_add(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++)
        for (int b = 0; b < 4; b++) out[4 * i + b] = (unsigned char)(s->h[i] >> (24 - 8 * b));
}

static void add_be32(struct sha256 *s, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    sha256_add(s, b, 4);
}

/* What the pool's work leaves for the loop's done callback (in the
 * request's memory: it lives until the answer is complete). */
struct digest {
    unsigned char sum[32];
    size_t keys, bytes;
    int recovered;
    unsigned dropped;
    bool failed;
};

/* Pool thread: may block (on the lock) and take its time (hashing up to
 * 4 MiB). The digest covers, for each key in byte order, the key's length
 * (4 bytes, big-endian), the key, the value's length and the value. */
static void digest_work(pfd_req *r, void *arg) {
    struct digest *d = arg;
    struct kv_copy *c = copy_table();
    if (!c) {
        d->failed = true;
        return;
    }
    struct sha256 s;
    sha256_init(&s);
    /* cut short when the client left (or request_timeout passed): done
     * then finds the request gone and answers nothing */
    for (size_t i = 0; i < c->n && !pfd_cancelled(r); i++) {
        const struct kv_entry *e = c->sorted[i];
        add_be32(&s, e->klen);
        sha256_add(&s, e->key, e->klen);
        add_be32(&s, e->vlen);
        sha256_add(&s, e->value, e->vlen);
        d->bytes += e->klen + e->vlen;
    }
    sha256_end(&s, d->sum);
    d->keys = c->n;
    d->recovered = c->recovered;
    d->dropped = c->dropped;
    copy_free(c);
}

/* Loop thread, after digest_work: the answer. */
static void digest_done(pfd_req *r, void *arg) {
    struct digest *d = arg;
    if (pfd_gone(r)) return; /* nobody to answer; nothing to free either */
    if (d->failed) {
        answer_error(r, 503, "the table cannot be read (memory, or its lock)");
        return;
    }
    if (d->recovered) recovered(r, d->dropped);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d->sum[i]);
    pfd_content_type(r, "application/json");
    pfd_printf(r, "{\"sha256\": \"%s\", \"keys\": %zu, \"bytes\": %zu}\n", hex, d->keys, d->bytes);
}

/* Inline: hands the work to the pool and finishes in digest_done. */
static int kv_digest(pfd_req *r) {
    count_request();
    struct digest *d = pfd_alloc(r, sizeof *d);
    if (!d) return PFD_ERROR;
    memset(d, 0, sizeof *d);
    pfd_async(r, digest_work, digest_done, d); /* -1: the pool is full, 503 is set */
    return PFD_OK;
}

/* ---- POST /kv/_snapshot: a pool handler ------------------------------------ */

/* Each worker's state for the route: the file's absolute path. */
struct snapshot_route {
    char *path;
};

/* The snapshot setting made absolute against the config file's folder;
 * malloc'd. */
static char *snapshot_path(const pfd_route *rt) {
    const char *file = pfd_route_setting(rt, "snapshot"), *dir = pfd_route_config_dir(rt);
    char cwd[PATH_MAX], *abs = NULL;
    if (!file) file = "kv-snapshot.json";
    if (file[0] == '/') return strdup(file);
    if (!dir) dir = getcwd(cwd, sizeof cwd);
    if (!dir || asprintf(&abs, "%s/%s", dir, file) < 0) return NULL;
    return abs;
}

/* s as a JSON string literal into f. */
static void json_fput(FILE *f, const char *s, size_t n) {
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            putc(c, f);
    }
    putc('"', f);
}

/* Writes the copy to path through a temporary file: synced, renamed over
 * the old one, the folder synced. 0, or -1 with errno. */
static int write_snapshot(const char *path, const struct kv_copy *c, long *size) {
    char *tmp = NULL, *dir = NULL;
    int fd = -1, rc = -1, saved;
    if (asprintf(&tmp, "%s.XXXXXX", path) < 0) return -1;
    if ((fd = mkstemp(tmp)) < 0) goto out;
    FILE *f = fdopen(fd, "w");
    if (!f) goto out;
    fd = -1; /* f has it */
    fputs("{", f);
    for (size_t i = 0; i < c->n; i++) {
        const struct kv_entry *e = c->sorted[i];
        fputs(i ? ",\n" : "\n", f);
        json_fput(f, e->key, e->klen);
        fputs(": ", f);
        json_fput(f, e->value, e->vlen);
    }
    fputs("\n}\n", f);
    *size = ftell(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        saved = errno;
        fclose(f);
        errno = saved;
        goto out;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) goto out;
    free(tmp);
    tmp = NULL;
    /* the rename itself is on disk once the folder is */
    if (!(dir = strdup(path))) goto out;
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) goto out;
    rc = fsync(dfd);
    saved = errno;
    close(dfd);
    errno = saved;
out:
    saved = errno;
    if (fd >= 0) close(fd);
    if (tmp) unlink(tmp);
    free(tmp);
    free(dir);
    errno = saved;
    return rc;
}

/* Pool thread: blocking writes and fsync are fine here. */
static int kv_snapshot(pfd_req *r) {
    count_request();
    const struct snapshot_route *sr = pfd_route_data(pfd_req_route(r));
    struct kv_copy *c = copy_table();
    if (!c) return answer_error(r, 503, "the table cannot be read (memory, or its lock)");
    if (c->recovered) recovered(r, c->dropped);
    long size = 0;
    if (write_snapshot(sr->path, c, &size) < 0) {
        const char *why = strerror(errno);
        pfd_log_error("kv: snapshot %s: %s", sr->path, why);
        copy_free(c);
        return answer_error(r, 500, pfd_sprintf(r, "snapshot: %s", why));
    }
    pfd_content_type(r, "application/json");
    pfd_write(r, "{\"file\": ", 9);
    pfd_write_json_string(r, sr->path, strlen(sr->path));
    pfd_printf(r, ", \"keys\": %zu, \"bytes\": %ld}\n", c->n, size);
    copy_free(c);
    return PFD_OK;
}

/* Reads a snapshot into t (empty): {"key": "value", ...}. 0, or -1 with
 * err. A missing file is an empty table. */
static int load_snapshot(struct kv_table *t, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "snapshot: %s: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(KV_FILE_MAX + 1), *value = malloc(KV_VALUE_MAX);
    size_t len = text ? fread(text, 1, KV_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int rc = -1;
    if (!text || !value || bad || len > KV_FILE_MAX) {
        snprintf(err, errlen, "snapshot: %s: %s", path,
                 !text || !value ? "out of memory"
                 : bad           ? "read error"
                                 : "too large");
        goto out;
    }
    struct json j = {.start = text, .p = text, .end = text + len};
    char key[KV_KEY_MAX], why[128];
    if (!json_eat(&j, '{')) {
        json_fail(&j, "expected '{'");
        goto malformed;
    }
    if (!json_eat(&j, '}')) {
        do {
            size_t klen, vlen;
            json_ws(&j);
            const char *at = j.p;
            int krc = json_string(&j, key, sizeof key, &klen);
            if (krc == -1) goto malformed;
            if (krc == -2)
                snprintf(why, sizeof why, "a key longer than %d bytes", KV_KEY_MAX);
            else if (key_ok(key, klen, why, sizeof why) && find(t, key, klen) >= 0)
                snprintf(why, sizeof why, "a key twice");
            else if (key_ok(key, klen, why, sizeof why))
                why[0] = '\0';
            if (why[0]) {
                snprintf(err, errlen, "snapshot: %s: at byte %zu: %s", path,
                         (size_t)(at - text) + 1, why);
                goto out;
            }
            if (!json_eat(&j, ':')) {
                json_fail(&j, "expected ':'");
                goto malformed;
            }
            int vrc = json_string(&j, value, KV_VALUE_MAX, &vlen);
            if (vrc == -1) goto malformed;
            if (vrc == -2 || put(t, key, klen, value, vlen, -1) < 0) {
                snprintf(err, errlen, "snapshot: %s: at byte %zu: %s", path,
                         (size_t)(at - text) + 1,
                         vrc == -2 ? "a value longer than 4096 bytes" : "more than 1024 keys");
                goto out;
            }
        } while (json_eat(&j, ','));
        if (!json_eat(&j, '}')) {
            json_fail(&j, "expected ',' or '}'");
            goto malformed;
        }
    }
    if (!json_at_end(&j)) goto malformed;
    rc = 0;
    goto out;
malformed:
    snprintf(err, errlen, "snapshot: %s: %s", path, j.err);
out:
    free(text);
    free(value);
    return rc;
}

/* Master, at every load of the configuration (--check too): the folder of
 * the snapshot exists, and a snapshot there can be read. */
static int snapshot_check(const pfd_route *rt, char *err, size_t errlen) {
    char *path = snapshot_path(rt);
    if (!path) {
        snprintf(err, errlen, "snapshot: out of memory");
        return -1;
    }
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    struct stat st;
    int rc = -1;
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    if (!dir)
        snprintf(err, errlen, "snapshot: out of memory");
    else if (stat(slash ? dir : ".", &st) < 0 || !S_ISDIR(st.st_mode))
        snprintf(err, errlen, "snapshot: %s: no such folder", dir);
    else {
        struct kv_table *scratch = calloc(1, sizeof *scratch);
        char why[512];
        if (!scratch)
            snprintf(err, errlen, "snapshot: out of memory");
        else if (load_snapshot(scratch, path, why, sizeof why) < 0)
            snprintf(err, errlen, "%s", why); /* "snapshot ...": names the setting's line */
        else
            rc = 0;
        free(scratch);
    }
    free(dir);
    free(path);
    return rc;
}

/* Worker, before it serves: the path; the first worker of the server's
 * life loads the snapshot into the empty table. Later ones (respawned,
 * reloaded) see it done without taking the lock. */
static int snapshot_init(pfd_route *rt, char *err, size_t errlen) {
    struct snapshot_route *sr = calloc(1, sizeof *sr);
    if (!sr || !(sr->path = snapshot_path(rt))) {
        free(sr);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pfd_route_set_data(rt, sr);
    if (atomic_load(&table->loaded)) return 0;
    unsigned dropped;
    int rc = lock_table(&dropped);
    if (rc < 0) {
        snprintf(err, errlen, "the table's lock cannot be taken");
        return -1;
    }
    if (!atomic_load(&table->loaded)) {
        rc = load_snapshot(table, sr->path, err, errlen);
        if (rc == 0) {
            pfd_log_info("kv: %u keys loaded from %s", count_of(table), sr->path);
            atomic_store(&table->loaded, 1);
        } else {
            for (int i = 0; i < KV_SLOTS; i++) atomic_store(&table->meta[i].state, SLOT_FREE);
            locked_set_count(table, 0);
        }
    }
    unlock_table();
    return rc < 0 ? -1 : 0;
}

static void snapshot_fini(pfd_route *rt) {
    struct snapshot_route *sr = pfd_route_data(rt);
    if (!sr) return;
    free(sr->path);
    free(sr);
    pfd_route_set_data(rt, NULL);
}

/* ---- GET /kv/_hold: for a test only ----------------------------------------- */

/* Takes the table's lock and keeps it. It exists for the test of a worker
 * killed while holding the lock (tests/integration/test_app.py): no real
 * handler holds it long enough for a test to SIGKILL its worker at that
 * moment. kv.conf does not route it, so a server run from kv.conf has no
 * way to reach it. It answers with a stream: first "holding the lock in
 * worker PID" (then the test kills PID), "released" when ms (default
 * 60 s) have passed or the client left. With key=K and value=V it first
 * writes half of a replacement of K, as a worker dying in the middle of a
 * PUT leaves it; it is rolled back at the release. */
static int kv_hold(pfd_req *r) {
    count_request();
    pfd_str ms = {0}, key = {0}, value = {0};
    char why[128];
    long wait = 60000;
    if (pfd_query_param(r, "ms", &ms) == 1) wait = strtol(ms.p, NULL, 10);
    if (pfd_query_param(r, "key", &key) == 1 && !key_ok(key.p, key.len, why, sizeof why))
        return answer_error(r, 400, why);
    if (pfd_query_param(r, "value", &value) != 1) value = (pfd_str){"new", 3};
    if (wait < 0 || wait > 600000 || value.len > KV_VALUE_MAX)
        return answer_error(r, 400, "ms: 0 to 600000; value: up to 4096 bytes");
    if (lock_for(r) < 0) return PFD_OK;
    int busy = key.p ? put_begin(table, key.p, key.len, value.p, value.len / 2) : -1;
    pfd_content_type(r, "text/plain");
    pfd_stream_begin(r);
    char line[64];
    int n = snprintf(line, sizeof line, "holding the lock in worker %d\n", (int)getpid());
    pfd_stream_write(r, line, (size_t)n);
    pfd_sleep(r, (unsigned)wait); /* early when the client leaves */
    if (busy >= 0) atomic_store_explicit(&table->meta[busy].state, SLOT_FREE, memory_order_release);
    unlock_table();
    pfd_stream_write(r, "released\n", 9);
    return pfd_stream_end(r);
}

/* ---- the application --------------------------------------------------------- */

/* Master, at the start and at each reload: the table. A reload gets the
 * same region back, with its data and its lock. */
static int kv_init(char *err, size_t errlen) {
    struct kv_table *t = pfd_shared_create("kv", sizeof *t);
    if (!t) {
        snprintf(err, errlen, "no shared region of %zu bytes", sizeof *t);
        return -1;
    }
    if (t->magic != KV_MAGIC) {
        if (pfd_lock_init(&t->lock) < 0) {
            snprintf(err, errlen, "cannot make the table's lock");
            return -1;
        }
        t->magic = KV_MAGIC;
    }
    atomic_fetch_add(&t->inits, 1);
    table = t;
    return 0;
}

/* Each worker, before it serves. */
static int kv_worker_init(unsigned index) {
    worker_index = index < KV_WORKERS ? index : KV_WORKERS;
    atomic_fetch_add(&table->worker_inits, 1);
    if (worker_index < KV_WORKERS) atomic_store(&table->workers[index].pid, (int)getpid());
    return 0;
}

static void kv_worker_exit(void) {
    atomic_fetch_add(&table->worker_exits, 1);
}

/* Each pool thread (the place for a thread's own database connection). */
static void kv_thread_init(void) {
    atomic_fetch_add(&table->thread_inits, 1);
}

static void kv_thread_exit(void) {
    atomic_fetch_add(&table->thread_exits, 1);
}

static const char *const snapshot_settings[] = {"snapshot", NULL};

static const pfd_handler kv_handlers[] = {
    {.name = "kv_list", .handle = kv_list, .body = PFD_BODY_DROP},
    {.name = "kv_item", .handle = kv_item}, /* PUT and POST read the body */
    {.name = "kv_stats", .handle = kv_stats, .body = PFD_BODY_DROP},
    {.name = "kv_digest", .handle = kv_digest, .body = PFD_BODY_DROP},
    {.name = "kv_snapshot",
     .handle = kv_snapshot,
     .mode = PFD_POOL,
     .pool_only = true, /* it writes and syncs a file */
     .body = PFD_BODY_DROP,
     .settings = snapshot_settings,
     .check = snapshot_check,
     .init = snapshot_init,
     .fini = snapshot_fini},
    {.name = "kv_hold",
     .handle = kv_hold,
     .mode = PFD_POOL,
     .pool_only = true,
     .body = PFD_BODY_DROP},
    {0},
};

const pfd_app preforkd_module = {
    .api_version = PFD_API_VERSION,
    .name = "kv",
    .handlers = kv_handlers,
    .init = kv_init,
    .worker_init = kv_worker_init,
    .worker_exit = kv_worker_exit,
    .thread_init = kv_thread_init,
    .thread_exit = kv_thread_exit,
};

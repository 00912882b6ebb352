/* benchtool: the bench's own load generator and signing helper, compiled by
 * bench/run at bench time (cc -O2, libsodium). Bench-only; not part of the
 * daemon.
 *
 *   benchtool load --port P --requests FILE --conns C --threads T
 *                  --duration S --mode keepalive|close
 *       Closed-loop HTTP/1.1 load on 127.0.0.1:P, one request in flight per
 *       connection. FILE holds "streams" (one per Host) of pre-built raw
 *       requests. keepalive: connection j sticks to stream j % K for its
 *       whole life (posta answers 421 and closes when one connection
 *       switches Host, so rotating Host per request, as a wrk script would,
 *       is not possible on keep-alive connections). close: every request is
 *       a new connection, and each new connection takes the next stream, so
 *       the Hosts rotate. Latency is measured from the request's first write
 *       (keepalive) or from connect() (close) to the last byte of the
 *       response. Prints one JSON object. With --tls, every connection
 *       is TLS (OpenSSL, no certificate check, SNI = the stream's Host, no
 *       session resumption: each new connection is a full handshake), and
 *       latency in close mode includes the handshake.
 *
 *   benchtool gen-inbox --seed HEX64 --from URL --to URL[,URL...]
 *                       --hosts H[,H...] --count N --body-bytes B --out FILE
 *       Writes N signed POST /inbox requests per recipient (fresh random
 *       ids) in the requests format; prints the sender's public key.
 *
 *   benchtool verify-rate --seconds S --body-bytes B
 *       crypto_sign_verify_detached in a loop on one thread; prints
 *       verifications per second.
 *
 *   benchtool fork-rate --count N
 *       The floor of a worker start on this machine: forks N children of
 *       this small process, each of which says "ready" on a pipe and waits;
 *       prints the time until all N were ready, the median CPU a child
 *       spent until then (schedstat) and this process's CPU for the forks.
 *
 * Requests file format:
 *   "posta-bench-requests 1\n" "streams K\n"
 *   then K times: "stream COUNT\n" then COUNT times: "LEN\n" LEN raw bytes "\n"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(char const* what)
{
    perror(what);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- requests */

typedef struct {
    char* data;
    size_t len;
} Req;

typedef struct {
    Req* reqs;
    size_t count;
    atomic_size_t next;
    atomic_size_t wraps;
    char host[256]; /* the first request's Host, without a port: the SNI */
} Stream;

static Stream* g_streams;
static size_t g_nstreams;

static void load_requests(char const* path)
{
    FILE* f = fopen(path, "rb");
    if (!f)
        die(path);
    unsigned version = 0;
    if (fscanf(f, "posta-bench-requests %u\n", &version) != 1 || version != 1) {
        fprintf(stderr, "%s: not a requests file\n", path);
        exit(2);
    }
    if (fscanf(f, "streams %zu\n", &g_nstreams) != 1 || g_nstreams == 0) {
        fprintf(stderr, "%s: bad streams line\n", path);
        exit(2);
    }
    g_streams = calloc(g_nstreams, sizeof(Stream));
    for (size_t s = 0; s < g_nstreams; s++) {
        size_t count = 0;
        if (fscanf(f, "stream %zu\n", &count) != 1 || count == 0) {
            fprintf(stderr, "%s: bad stream line\n", path);
            exit(2);
        }
        g_streams[s].reqs = calloc(count, sizeof(Req));
        g_streams[s].count = count;
        for (size_t i = 0; i < count; i++) {
            size_t len = 0;
            if (fscanf(f, "%zu\n", &len) != 1 || len == 0) {
                fprintf(stderr, "%s: bad length line\n", path);
                exit(2);
            }
            char* data = malloc(len);
            if (fread(data, 1, len, f) != len || fgetc(f) != '\n') {
                fprintf(stderr, "%s: truncated request\n", path);
                exit(2);
            }
            g_streams[s].reqs[i] = (Req) { data, len };
        }
        /* The SNI: the first request's Host, up to a ':' port. */
        Req const* first = &g_streams[s].reqs[0];
        char const* host = memmem(first->data, first->len, "\r\nHost: ", 8);
        if (host) {
            host += 8;
            size_t n = 0;
            while (host + n < first->data + first->len && host[n] != '\r' && host[n] != ':'
                && n + 1 < sizeof g_streams[s].host)
                n++;
            memcpy(g_streams[s].host, host, n);
        }
    }
    fclose(f);
}

static Req* next_request(size_t stream)
{
    Stream* s = &g_streams[stream];
    size_t n = atomic_fetch_add(&s->next, 1);
    if (n >= s->count && n % s->count == 0)
        atomic_fetch_add(&s->wraps, 1);
    return &s->reqs[n % s->count];
}

/* --------------------------------------------------------------- histogram */

#define FINE_US 100000   /* 1 us buckets below 100 ms */
#define COARSE_MS 120000 /* 1 ms buckets up to 120 s */

typedef struct {
    uint64_t fine[FINE_US];
    uint64_t coarse[COARSE_MS];
    uint64_t count;
    uint64_t max_us;
} Hist;

static void hist_add(Hist* h, uint64_t us)
{
    if (us < FINE_US)
        h->fine[us]++;
    else
        h->coarse[us / 1000 < COARSE_MS ? us / 1000 : COARSE_MS - 1]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

static void hist_merge(Hist* into, Hist const* from)
{
    for (size_t i = 0; i < FINE_US; i++)
        into->fine[i] += from->fine[i];
    for (size_t i = 0; i < COARSE_MS; i++)
        into->coarse[i] += from->coarse[i];
    into->count += from->count;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

static double hist_pct(Hist const* h, double pct)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)((pct / 100.0) * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < FINE_US; i++) {
        seen += h->fine[i];
        if (seen > rank)
            return (double)i;
    }
    for (size_t i = 0; i < COARSE_MS; i++) {
        seen += h->coarse[i];
        if (seen > rank)
            return (double)i * 1000.0;
    }
    return (double)h->max_us;
}

/* -------------------------------------------------------------------- load */

enum { MODE_KEEPALIVE, MODE_CLOSE };
enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_WRITING, C_READING };

#define RBUF 65536
#define REQUEST_TIMEOUT_NS (5ull * 1000000000ull)

typedef struct {
    int fd;
    SSL* ssl; /* --tls only */
    int state;
    size_t stream;
    Req* req;
    size_t written;
    char* buf;
    size_t have;
    uint64_t started; /* latency clock start */
    uint64_t progress; /* last byte moved, for the timeout */
    uint64_t retry_at; /* C_IDLE: when to connect again */
} Conn;

typedef struct {
    int id;
    int epfd;
    Conn* conns;
    size_t nconns;
    uint64_t deadline;
    Hist* hist;
    uint64_t status[600];
    uint64_t responses;
    uint64_t err_connect, err_read, err_eof, err_timeout, err_parse, reconnects, server_closes;
} Thread;

static int g_mode = MODE_KEEPALIVE;
static struct sockaddr_in g_addr;
static atomic_size_t g_rotate;
static SSL_CTX* g_tls; /* --tls */

static void conn_close(Thread* t, Conn* c)
{
    (void)t;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_IDLE;
    c->have = 0;
}

static void conn_start(Thread* t, Conn* c, uint64_t now);

static void conn_fail(Thread* t, Conn* c, uint64_t now, uint64_t* counter)
{
    (*counter)++;
    conn_close(t, c);
    c->retry_at = now + 1000000; /* 1 ms: no hot loop on a refusing server */
}

static void begin_request(Conn* c, uint64_t now, int fresh_connection)
{
    c->req = next_request(c->stream);
    c->written = 0;
    c->have = 0;
    c->state = C_WRITING;
    if (!fresh_connection || g_mode == MODE_KEEPALIVE)
        c->started = now;
    c->progress = now;
}

static void conn_start(Thread* t, Conn* c, uint64_t now)
{
    if (g_mode == MODE_CLOSE)
        c->stream = atomic_fetch_add(&g_rotate, 1) % g_nstreams;
    c->started = now;
    c->progress = now;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(t, c, now, &t->err_connect);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c };
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    int rc = connect(fd, (struct sockaddr*)&g_addr, sizeof g_addr);
    if (rc < 0 && errno != EINPROGRESS) {
        conn_fail(t, c, now, &t->err_connect);
        return;
    }
    c->req = next_request(c->stream);
    c->written = 0;
    c->have = 0;
    if (g_tls) {
        c->ssl = SSL_new(g_tls);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
            conn_fail(t, c, now, &t->err_connect);
            return;
        }
        SSL_set_tlsext_host_name(c->ssl, g_streams[c->stream].host);
        SSL_set_connect_state(c->ssl);
    }
    c->state = rc == 0 ? (g_tls ? C_HANDSHAKE : C_WRITING) : C_CONNECTING;
}

/* send/recv, or SSL_write/SSL_read on a TLS connection. Returns what the
 * plain calls return; on TLS, -1 with errno EAGAIN when OpenSSL wants the
 * socket again, 0 at the server's close. */
static ssize_t conn_send(Conn* c, char const* data, size_t len)
{
    if (!c->ssl)
        return send(c->fd, data, len, MSG_NOSIGNAL);
    int n = SSL_write(c->ssl, data, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    errno = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? EAGAIN : EIO;
    return -1;
}

static ssize_t conn_recv(Conn* c, char* data, size_t len)
{
    if (!c->ssl)
        return recv(c->fd, data, len, 0);
    int n = SSL_read(c->ssl, data, (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    errno = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? EAGAIN : EIO;
    return -1;
}

/* Returns 1 when buf holds one complete response; sets *status, *close. -1
 * on a malformed or unsupported (chunked) response. 0: need more. */
static int parse_response(Conn* c, int* status, int* server_close, int eof)
{
    char* end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end)
        return c->have >= RBUF ? -1 : 0;
    if (c->have < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->buf + 9);
    size_t head_len = (size_t)(end - c->buf) + 4;
    long content_length = -1;
    *server_close = 0;
    char* line = memchr(c->buf, '\n', head_len);
    while (line && line < end) {
        line++;
        if (strncasecmp(line, "content-length:", 15) == 0)
            content_length = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "connection:", 11) == 0) {
            char* eol = memchr(line, '\r', (size_t)(end + 2 - line));
            if (eol && memmem(line, (size_t)(eol - line), "close", 5))
                *server_close = 1;
        } else if (strncasecmp(line, "transfer-encoding:", 18) == 0)
            return -1;
        line = memchr(line, '\n', (size_t)(end + 4 - line));
    }
    if (content_length < 0) {
        if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200))
            content_length = 0;
        else {
            *server_close = 1;
            return eof ? 1 : 0; /* delimited by close */
        }
    }
    if (c->have < head_len + (size_t)content_length)
        return 0;
    if (c->have > head_len + (size_t)content_length)
        return -1; /* we never pipeline: extra bytes are a protocol error */
    return 1;
}

static void on_complete(Thread* t, Conn* c, uint64_t now, int status, int server_close)
{
    if (status >= 0 && status < 600)
        t->status[status]++;
    t->responses++;
    hist_add(t->hist, (now - c->started) / 1000);
    if (g_mode == MODE_CLOSE) {
        conn_close(t, c);
        conn_start(t, c, now);
        return;
    }
    if (server_close) {
        t->server_closes++;
        t->reconnects++;
        conn_close(t, c);
        conn_start(t, c, now);
        return;
    }
    begin_request(c, now, 0);
}

static void drive(Thread* t, Conn* c, uint64_t now, uint32_t events)
{
    for (;;) {
        switch (c->state) {
        case C_IDLE:
            return;
        case C_CONNECTING: {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                conn_fail(t, c, now, &t->err_connect);
                return;
            }
            c->state = g_tls ? C_HANDSHAKE : C_WRITING;
            break;
        }
        case C_HANDSHAKE: {
            int rc = SSL_do_handshake(c->ssl);
            if (rc != 1) {
                int e = SSL_get_error(c->ssl, rc);
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return; /* edge-triggered: the next byte or room wakes us */
                conn_fail(t, c, now, &t->err_connect);
                return;
            }
            c->progress = now;
            c->state = C_WRITING;
            break;
        }
        case C_WRITING: {
            ssize_t n = conn_send(c, c->req->data + c->written, c->req->len - c->written);
            if (n < 0) {
                if (errno == EAGAIN)
                    return;
                conn_fail(t, c, now, &t->err_read);
                return;
            }
            c->written += (size_t)n;
            c->progress = now;
            if (c->written < c->req->len)
                return;
            c->state = C_READING;
            /* Edge-triggered: the response's arrival raises EPOLLIN. */
            return;
        }
        case C_READING: {
            int eof = 0;
            for (;;) {
                ssize_t n = conn_recv(c, c->buf + c->have, RBUF - c->have);
                if (n > 0) {
                    c->have += (size_t)n;
                    c->progress = now;
                    if (c->have == RBUF)
                        break;
                    continue;
                }
                if (n == 0) {
                    eof = 1;
                    break;
                }
                if (errno == EAGAIN)
                    break;
                conn_fail(t, c, now, &t->err_read);
                return;
            }
            int status = 0, server_close = 0;
            int rc = parse_response(c, &status, &server_close, eof);
            if (rc < 0) {
                conn_fail(t, c, now, &t->err_parse);
                return;
            }
            if (rc == 0) {
                if (eof)
                    conn_fail(t, c, now, &t->err_eof);
                return;
            }
            on_complete(t, c, now, status, server_close || eof);
            if (c->state == C_WRITING || c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
                events = EPOLLOUT;
                if (c->state == C_CONNECTING)
                    return; /* wait for its own EPOLLOUT */
                continue;
            }
            return;
        }
        }
    }
}

static void* thread_main(void* arg)
{
    Thread* t = arg;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0)
        die("epoll_create1");
    uint64_t now = now_ns();
    for (size_t i = 0; i < t->nconns; i++) {
        Conn* c = &t->conns[i];
        c->buf = malloc(RBUF);
        c->fd = -1;
        c->state = C_IDLE;
        conn_start(t, c, now);
        if (c->state == C_WRITING || c->state == C_HANDSHAKE)
            drive(t, c, now, EPOLLOUT);
    }
    struct epoll_event events[512];
    uint64_t next_scan = now + 100000000;
    while (now < t->deadline) {
        int n = epoll_wait(t->epfd, events, 512, 1);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            Conn* c = events[i].data.ptr;
            drive(t, c, now, events[i].events);
        }
        if (now >= next_scan || n == 0) {
            for (size_t i = 0; i < t->nconns; i++) {
                Conn* c = &t->conns[i];
                if (c->state == C_IDLE && now >= c->retry_at) {
                    t->reconnects++;
                    conn_start(t, c, now);
                    if (c->state == C_WRITING || c->state == C_HANDSHAKE)
                        drive(t, c, now, EPOLLOUT);
                } else if (c->state != C_IDLE && now - c->progress > REQUEST_TIMEOUT_NS) {
                    conn_fail(t, c, now, &t->err_timeout);
                }
            }
            next_scan = now + 100000000;
        }
    }
    for (size_t i = 0; i < t->nconns; i++)
        conn_close(t, &t->conns[i]);
    close(t->epfd);
    return NULL;
}

static char const* arg_value(int argc, char** argv, char const* name, char const* fallback)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    if (!fallback) {
        fprintf(stderr, "missing %s\n", name);
        exit(2);
    }
    return fallback;
}

static int cmd_load(int argc, char** argv)
{
    int port = atoi(arg_value(argc, argv, "--port", NULL));
    char const* path = arg_value(argc, argv, "--requests", NULL);
    size_t conns = (size_t)atoi(arg_value(argc, argv, "--conns", "64"));
    size_t nthreads = (size_t)atoi(arg_value(argc, argv, "--threads", "2"));
    double duration = atof(arg_value(argc, argv, "--duration", "5"));
    char const* mode = arg_value(argc, argv, "--mode", "keepalive");
    g_mode = strcmp(mode, "close") == 0 ? MODE_CLOSE : MODE_KEEPALIVE;
    if (nthreads == 0 || conns < nthreads) {
        fprintf(stderr, "need conns >= threads >= 1\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    load_requests(path);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--tls") == 0) {
            g_tls = SSL_CTX_new(TLS_client_method());
            if (!g_tls)
                die("SSL_CTX_new");
            SSL_CTX_set_verify(g_tls, SSL_VERIFY_NONE, NULL);
            SSL_CTX_set_session_cache_mode(g_tls, SSL_SESS_CACHE_OFF);
            static unsigned char const alpn[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
            SSL_CTX_set_alpn_protos(g_tls, alpn, sizeof alpn);
        }
    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)port);
    g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    Thread* threads = calloc(nthreads, sizeof(Thread));
    Conn* all = calloc(conns, sizeof(Conn));
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(duration * 1e9);
    size_t given = 0;
    for (size_t i = 0; i < nthreads; i++) {
        Thread* t = &threads[i];
        t->id = (int)i;
        t->nconns = conns / nthreads + (i < conns % nthreads ? 1 : 0);
        t->conns = all + given;
        for (size_t j = 0; j < t->nconns; j++)
            t->conns[j].stream = (given + j) % g_nstreams;
        given += t->nconns;
        t->deadline = deadline;
        t->hist = calloc(1, sizeof(Hist));
    }
    pthread_t* ids = calloc(nthreads, sizeof(pthread_t));
    for (size_t i = 0; i < nthreads; i++)
        if (pthread_create(&ids[i], NULL, thread_main, &threads[i]) != 0)
            die("pthread_create");
    for (size_t i = 0; i < nthreads; i++)
        pthread_join(ids[i], NULL);
    double elapsed = (double)(now_ns() - start) / 1e9;

    Hist* total = calloc(1, sizeof(Hist));
    Thread sum = { 0 };
    for (size_t i = 0; i < nthreads; i++) {
        Thread* t = &threads[i];
        hist_merge(total, t->hist);
        for (int s = 0; s < 600; s++)
            sum.status[s] += t->status[s];
        sum.responses += t->responses;
        sum.err_connect += t->err_connect;
        sum.err_read += t->err_read;
        sum.err_eof += t->err_eof;
        sum.err_timeout += t->err_timeout;
        sum.err_parse += t->err_parse;
        sum.reconnects += t->reconnects;
        sum.server_closes += t->server_closes;
    }
    size_t wraps = 0;
    for (size_t s = 0; s < g_nstreams; s++)
        wraps += g_streams[s].count > 1 ? atomic_load(&g_streams[s].wraps) : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec
        + (double)ru.ru_stime.tv_usec / 1e6;

    printf("{\"elapsed_s\": %.4f, \"responses\": %llu, \"rps\": %.1f, \"status\": {", elapsed,
        (unsigned long long)sum.responses, (double)sum.responses / duration);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (sum.status[s]) {
            printf("%s\"%d\": %llu", first ? "" : ", ", s, (unsigned long long)sum.status[s]);
            first = 0;
        }
    printf("}, \"errors\": {\"connect\": %llu, \"read\": %llu, \"eof\": %llu, \"timeout\": %llu, \"parse\": %llu}, "
           "\"reconnects\": %llu, \"server_closes\": %llu, \"pool_wraps\": %zu, "
           "\"latency_us\": {\"p50\": %.0f, \"p90\": %.0f, \"p99\": %.0f, \"p999\": %.0f, \"max\": %llu}, "
           "\"client_cpu_s\": %.3f}\n",
        (unsigned long long)sum.err_connect, (unsigned long long)sum.err_read, (unsigned long long)sum.err_eof,
        (unsigned long long)sum.err_timeout, (unsigned long long)sum.err_parse, (unsigned long long)sum.reconnects,
        (unsigned long long)sum.server_closes, wraps, hist_pct(total, 50), hist_pct(total, 90), hist_pct(total, 99),
        hist_pct(total, 99.9), (unsigned long long)total->max_us, cpu);
    return 0;
}

/* ------------------------------------------------------------------- inbox */

static void b64url(char* out, size_t out_len, unsigned char const* bin, size_t bin_len)
{
    sodium_bin2base64(out, out_len, bin, bin_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void keypair_from_seed(char const* seed_hex, unsigned char* pk, unsigned char* sk)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    size_t bin_len = 0;
    if (sodium_hex2bin(seed, sizeof seed, seed_hex, strlen(seed_hex), NULL, &bin_len, NULL) != 0
        || bin_len != sizeof seed) {
        fprintf(stderr, "--seed must be 64 hex digits\n");
        exit(2);
    }
    crypto_sign_seed_keypair(pk, sk, seed);
}

/* Splits a comma list in place. */
static size_t split(char* list, char** out, size_t max)
{
    size_t n = 0;
    for (char* tok = strtok(list, ","); tok && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static size_t make_body(char* out, size_t cap, char const* from, char const* to, char const* sent_at,
    size_t body_bytes)
{
    unsigned char id[16];
    randombytes_buf(id, sizeof id);
    char id64[32];
    b64url(id64, sizeof id64, id, sizeof id);
    char text[8192];
    if (body_bytes >= sizeof text)
        body_bytes = sizeof text - 1;
    for (size_t i = 0; i < body_bytes; i++)
        text[i] = "posta bench message "[i % 20];
    text[body_bytes] = 0;
    int n = snprintf(out, cap,
        "{\"posta\":1,\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"sent_at\":\"%s\",\"subject\":\"bench\","
        "\"content_type\":\"text/plain\",\"body\":\"%s\"}",
        id64, from, to, sent_at, text);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "body too large\n");
        exit(2);
    }
    return (size_t)n;
}

static int cmd_gen_inbox(int argc, char** argv)
{
    char const* seed = arg_value(argc, argv, "--seed", NULL);
    char const* from = arg_value(argc, argv, "--from", NULL);
    char* to_list = strdup(arg_value(argc, argv, "--to", NULL));
    char* host_list = strdup(arg_value(argc, argv, "--hosts", NULL));
    size_t count = (size_t)atol(arg_value(argc, argv, "--count", NULL));
    size_t body_bytes = (size_t)atol(arg_value(argc, argv, "--body-bytes", "300"));
    char const* out_path = arg_value(argc, argv, "--out", NULL);
    char* tos[1024];
    char* hosts[1024];
    size_t nto = split(to_list, tos, 1024);
    size_t nhosts = split(host_list, hosts, 1024);
    if (nto == 0 || nto != nhosts || count == 0) {
        fprintf(stderr, "--to and --hosts need the same number of entries, --count > 0\n");
        return 2;
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    keypair_from_seed(seed, pk, sk);

    char sent_at[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(sent_at, sizeof sent_at, "%Y-%m-%dT%H:%M:%SZ", &tm);

    FILE* out = fopen(out_path, "wb");
    if (!out)
        die(out_path);
    fprintf(out, "posta-bench-requests 1\nstreams %zu\n", nto);
    static char body[16384];
    static char request[20000];
    for (size_t s = 0; s < nto; s++) {
        fprintf(out, "stream %zu\n", count);
        for (size_t i = 0; i < count; i++) {
            size_t body_len = make_body(body, sizeof body, from, tos[s], sent_at, body_bytes);
            unsigned char sig[crypto_sign_BYTES];
            crypto_sign_detached(sig, NULL, (unsigned char const*)body, body_len, sk);
            char sig64[128];
            b64url(sig64, sizeof sig64, sig, sizeof sig);
            int n = snprintf(request, sizeof request,
                "POST /inbox HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Posta-Signature: ed25519=%s\r\nContent-Length: %zu\r\n\r\n%s",
                hosts[s], sig64, body_len, body);
            fprintf(out, "%d\n", n);
            fwrite(request, 1, (size_t)n, out);
            fputc('\n', out);
        }
    }
    if (fclose(out) != 0)
        die(out_path);
    char pk64[64];
    b64url(pk64, sizeof pk64, pk, sizeof pk);
    printf("%s\n", pk64);
    return 0;
}

static int cmd_verify_rate(int argc, char** argv)
{
    double seconds = atof(arg_value(argc, argv, "--seconds", "2"));
    size_t body_bytes = (size_t)atol(arg_value(argc, argv, "--body-bytes", "300"));
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    static char body[16384];
    size_t len = make_body(body, sizeof body, "http://127.0.0.1:1", "http://id0.bench", "2026-01-01T00:00:00Z",
        body_bytes);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (unsigned char const*)body, len, sk);
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    uint64_t done = 0;
    uint64_t t = start;
    while (t < end) {
        for (int i = 0; i < 64; i++)
            if (crypto_sign_verify_detached(sig, (unsigned char const*)body, len, pk) != 0) {
                fprintf(stderr, "verification failed\n");
                return 1;
            }
        done += 64;
        t = now_ns();
    }
    double elapsed = (double)(t - start) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec
        + (double)ru.ru_stime.tv_usec / 1e6;
    /* Per CPU second as well: on a shared 2-core machine the wall-clock rate
     * undercounts when the thread was descheduled. */
    printf("{\"verifies\": %llu, \"elapsed_s\": %.4f, \"per_s\": %.1f, \"cpu_s\": %.4f, \"per_cpu_s\": %.1f, "
           "\"message_bytes\": %zu}\n",
        (unsigned long long)done, elapsed, (double)done / elapsed, cpu, cpu > 0 ? (double)done / cpu : 0.0, len);
    return 0;
}

static double schedstat_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE* f = fopen(path, "r");
    unsigned long long ns = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return (double)ns / 1e6;
}

static int compare_double(void const* a, void const* b)
{
    double x = *(double const*)a, y = *(double const*)b;
    return (x > y) - (x < y);
}

static int cmd_fork_rate(int argc, char** argv)
{
    size_t count = (size_t)atol(arg_value(argc, argv, "--count", "1000"));
    pid_t* pids = calloc(count, sizeof *pids);
    double* cpu = calloc(count, sizeof *cpu);
    int ready[2];
    if (!pids || !cpu || pipe(ready) < 0) {
        perror("fork-rate");
        return 1;
    }
    uint64_t start = now_ns();
    size_t forked = 0;
    for (; forked < count; forked++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            break;
        }
        if (pid == 0) {
            close(ready[0]);
            if (write(ready[1], "r", 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
        pids[forked] = pid;
    }
    size_t heard = 0;
    char buffer[4096];
    while (heard < forked) {
        ssize_t n = read(ready[0], buffer, sizeof buffer);
        if (n <= 0)
            break;
        heard += (size_t)n;
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    size_t measured = 0;
    for (size_t i = 0; i < forked; i++) {
        double ms = schedstat_ms(pids[i]);
        if (ms >= 0)
            cpu[measured++] = ms;
    }
    double parent_ms = schedstat_ms(getpid());
    for (size_t i = 0; i < forked; i++)
        kill(pids[i], SIGKILL);
    for (size_t i = 0; i < forked; i++)
        waitpid(pids[i], NULL, 0);
    qsort(cpu, measured, sizeof *cpu, compare_double);
    printf("{\"count\": %zu, \"ready\": %zu, \"all_ready_s\": %.4f, \"child_cpu_ms_median\": %.3f, "
           "\"parent_cpu_ms\": %.1f}\n",
        forked, heard, seconds, measured ? cpu[measured / 2] : -1.0, parent_ms);
    free(pids);
    free(cpu);
    return heard == count ? 0 : 1;
}

int main(int argc, char** argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: benchtool load|gen-inbox|verify-rate|fork-rate ...\n");
        return 2;
    }
    if (strcmp(argv[1], "load") == 0)
        return cmd_load(argc, argv);
    if (strcmp(argv[1], "fork-rate") == 0)
        return cmd_fork_rate(argc, argv);
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 2;
    }
    if (strcmp(argv[1], "gen-inbox") == 0)
        return cmd_gen_inbox(argc, argv);
    if (strcmp(argv[1], "verify-rate") == 0)
        return cmd_verify_rate(argc, argv);
    fprintf(stderr, "unknown command %s\n", argv[1]);
    return 2;
}

/* A small closed-loop HTTP/1.1 load generator for the service benchmarks (HEAD included).
 *
 * wrk waits for a HEAD response's body (its parser is never told the request
 * was a HEAD, so it reads Content-Length bytes that never come); this tool
 * knows. Each of C connections is one thread with one keep-alive socket that
 * sends the same request, reads the response (headers, then Content-Length
 * bytes unless the method is HEAD) and sends again, until D seconds are over.
 *
 *   _load -c CONNECTIONS -d SECONDS [-m METHOD] [-H 'Name: value']... http://127.0.0.1:PORT/PATH?QUERY
 *
 * Prints one line: "requests N seconds S rps R non2xx K errors E". Loopback
 * (numeric IPv4) only, as every benchmark here.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static char request[8192];
static size_t request_len;
static int is_head;
static double deadline;
static atomic_long done, non2xx, errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One response on fd: 0 when read whole (status in *status), -1 on a broken connection. */
static int read_response(int fd, char *buf, size_t cap, int *status) {
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = recv(fd, buf + have, cap - have - 1, 0);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= cap - 1) return -1;
    }
    size_t head = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1) return -1;
    long length = 0;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atol(line + 17);
    }
    if (is_head || *status == 204 || *status == 304) length = 0;
    long left = length - (long)(have - head);
    while (left > 0) {
        ssize_t n = recv(fd, buf, left < (long)cap ? (size_t)left : cap, 0);
        if (n <= 0) return -1;
        left -= n;
    }
    return 0;
}

static void *connection(void *unused) {
    (void)unused;
    char *buf = malloc(1 << 16);
    int fd = dial();
    while (now() < deadline) {
        int status = 0;
        if (fd < 0 || send(fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len ||
            read_response(fd, buf, 1 << 16, &status) != 0) {
            atomic_fetch_add(&errors, 1);
            if (fd >= 0) close(fd);
            fd = dial();
            continue;
        }
        atomic_fetch_add(&done, 1);
        if (status < 200 || status >= 400) atomic_fetch_add(&non2xx, 1);
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    int conns = 16;
    double seconds = 5;
    const char *method = "GET";
    char headers[4096] = "";
    int opt;
    while ((opt = getopt(argc, argv, "c:d:m:H:")) != -1) {
        if (opt == 'c') conns = atoi(optarg);
        else if (opt == 'd') seconds = atof(optarg);
        else if (opt == 'm') method = optarg;
        else if (opt == 'H' && strlen(headers) + strlen(optarg) + 3 < sizeof headers) {
            strcat(headers, optarg);
            strcat(headers, "\r\n");
        } else {
            fprintf(stderr, "usage: %s -c N -d S [-m METHOD] [-H HEADER]... http://IP:PORT/PATH\n", argv[0]);
            return 2;
        }
    }
    char host[64];
    int port;
    int at = 0;
    if (optind >= argc || sscanf(argv[optind], "http://%63[0-9.]:%d%n", host, &port, &at) != 2 || conns < 1) {
        fprintf(stderr, "need one URL http://IP:PORT/PATH and -c >= 1\n");
        return 2;
    }
    const char *path = argv[optind] + at;
    if (!*path) path = "/";
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "not a numeric IPv4 address: %s\n", host);
        return 2;
    }
    int n = snprintf(request, sizeof request, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", method, path, host, port,
                     headers);
    if (n <= 0 || (size_t)n >= sizeof request) {
        fprintf(stderr, "request too long\n");
        return 2;
    }
    request_len = (size_t)n;
    is_head = strcasecmp(method, "HEAD") == 0;
    pthread_t *threads = calloc((size_t)conns, sizeof *threads);
    double start = now();
    deadline = start + seconds;
    for (int i = 0; i < conns; i++) pthread_create(&threads[i], NULL, connection, NULL);
    for (int i = 0; i < conns; i++) pthread_join(threads[i], NULL);
    double took = now() - start;
    long total = atomic_load(&done);
    printf("requests %ld seconds %.3f rps %.1f non2xx %ld errors %ld\n", total, took, total / took,
           atomic_load(&non2xx), atomic_load(&errors));
    return 0;
}

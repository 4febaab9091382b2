// An open-loop HTTP/1.1 load generator in C, for the fixed-rate latency phases where the Node
// generator's own timing is a large part of what it measures (bench/open-load-native.mjs compiles
// it and runs it behind bench/open-load.mjs's options, `generator: 'native'`; it says why).
// Nothing here is Warden's: it sends one prepared request, again and again, at a fixed rate.
//
// Request i is due at t0 + i / rate (evenly spaced, to the nanosecond). A timerfd set to the next
// due time wakes the loop; every request due by then is handed to a free keep-alive connection
// (one request in flight per connection), or, when all are busy, waits in order for the first
// one to free. Latency runs from that hand-over to the kernel's receipt of the answer's last
// bytes (SO_TIMESTAMPNS: on 127.0.0.1 the stamp is taken as the server sends, on its CPU), not
// to the moment this loop read them: where the generator shares its core with other work (the
// decision-log bench puts it beside the brokers' helper threads and the sink servers), how late
// it woke to read is its own delay, not the server's, and is reported apart (`readLag...`); an
// answer with no stamp is timed at its read. A stalled server shows in full, since the requests
// keep coming and wait. How late the loop handed a request over after its due time is the
// generator's own delay too, reported beside the latencies (its p99 and max), as
// bench/open-load.mjs reports its event loop's. A
// connection the server closes between answers (a keep-alive timeout, `Connection: close`) is
// opened again, and a request sent on it just as it closed is sent again, timed from its first
// hand-over.
//
// argv: port rate duration_s warmup_s connections request_file
// The request file holds the raw request bytes (request line, headers with Content-Length, body).
// Prints one JSON line in the shape of bench/latency-hist.mjs's printResult.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_US 10
#define MAX_BUCKETS 200000 /* 2 s, as bench/latency-hist.mjs */
#define RBUF 65536

struct conn {
  int fd;
  int busy;
  int measured;
  int retries;      /* times this request was sent again on a new connection */
  uint64_t sent_at; /* ns, hand-over */
  uint64_t rx_real; /* ns, CLOCK_REALTIME: the kernel's stamp of the last bytes read, 0 if none */
  size_t wrote;     /* bytes of the request written */
  size_t got;       /* bytes of the answer read */
  char buf[RBUF];
};

static uint32_t hist[MAX_BUCKETS], lag_hist[MAX_BUCKETS], read_lag_hist[MAX_BUCKETS];
/* stamped: answers timed by the kernel's stamp rather than at their read */
static uint64_t count, lag_count, non2xx, codes[600], stamped;
static double max_ms, max_lag_ms, max_read_lag_ms;
static char *req;
static size_t req_len;
/* OPEN_LOAD_TRACE=<path>: each recorded request's hand-over (µs after the start), latency and how late it was read (µs), one per line, for probes. */
static FILE *trace;

static uint64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/*
 * CLOCK_REALTIME minus CLOCK_MONOTONIC now (ns): the realtime reading between two monotonic ones,
 * of three tries the one whose pair was closest. Read in one go, a preemption between the two
 * readings skewed it: one answer in 15,000 came out 23 µs after its own read.
 */
static int64_t real_minus_mono(void) {
  int64_t best = 0;
  uint64_t best_gap = UINT64_MAX;
  for (int i = 0; i < 3; i++) {
    const uint64_t a = now_ns(), r = clock_ns(CLOCK_REALTIME), b = now_ns();
    if (b - a < best_gap) {
      best_gap = b - a;
      best = (int64_t)(r - (a + (b - a) / 2));
    }
  }
  return best;
}

/*
 * When the answer that just completed reached the socket, on CLOCK_MONOTONIC; 0 where the kernel
 * gave no stamp or one out of [sent_at, read_at] (the answer is then timed at `read_at`, when this
 * loop read it). The stamp is CLOCK_REALTIME: moved by the two clocks' offset read now, so a step
 * of the wall clock during the run moves nothing.
 */
static uint64_t received_at(const struct conn *c, uint64_t read_at) {
  if (c->rx_real == 0) return 0;
  const uint64_t at = (uint64_t)((int64_t)c->rx_real - real_minus_mono());
  return at >= c->sent_at && at <= read_at ? at : 0;
}

/* read(2) that also keeps the kernel's receive stamp of what it read (SO_TIMESTAMPNS) in c->rx_real. */
static ssize_t read_stamped(struct conn *c) {
  char control[CMSG_SPACE(sizeof(struct timespec))];
  struct iovec iov = {.iov_base = c->buf + c->got, .iov_len = RBUF - c->got};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t r = recvmsg(c->fd, &m, 0);
  if (r <= 0) return r;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h != NULL; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS) continue;
    struct timespec ts;
    memcpy(&ts, CMSG_DATA(h), sizeof ts);
    c->rx_real = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  }
  return r;
}

static void die(const char *what) {
  printf("{\"error\":\"open-load.c: %s: %s\"}\n", what, strerror(errno));
  exit(1);
}

static void record(uint32_t *h, double ms) {
  size_t b = (size_t)(ms * 1000.0 / BUCKET_US);
  h[b < MAX_BUCKETS ? b : MAX_BUCKETS - 1] += 1;
}

static double percentile(const uint32_t *h, uint64_t n, double p) {
  uint64_t target = (uint64_t)(p * (double)n + 0.999999), acc = 0;
  for (size_t i = 0; i < MAX_BUCKETS; i++) {
    acc += h[i];
    if (acc >= target && acc > 0) return (double)i * BUCKET_US / 1000.0;
  }
  return 0;
}

static int open_conn(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one); /* unsupported: answers are timed at their read */
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
  return fd;
}

static void watch(int ep, int fd, int i) {
  struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = (uint64_t)i};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce) < 0) die("epoll_ctl");
}

static void reopen(int ep, struct conn *c, int port, int i) {
  close(c->fd); /* also leaves the epoll set */
  c->fd = open_conn(port);
  c->got = 0;
  watch(ep, c->fd, i);
}

/*
 * Writes what is left of the request (the rest goes when the socket takes it: EPOLLOUT); 1 when the
 * server had closed the connection (its keep-alive timeout ran out just before), else 0.
 */
static int write_req(struct conn *c) {
  while (c->wrote < req_len) {
    ssize_t w = send(c->fd, req + c->wrote, req_len - c->wrote, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EPIPE || errno == ECONNRESET) return 1;
      die("write");
    }
    c->wrote += (size_t)w;
  }
  return 0;
}

/* Sends the request again on a new connection, the time lost counted in its latency (a few tries, then an error). */
static void resend(int ep, struct conn *c, int port, int i) {
  if (++c->retries > 3) die("the server closed the connection before answering, 4 times");
  reopen(ep, c, port, i);
  c->wrote = 0;
  if (write_req(c) != 0) resend(ep, c, port, i);
}

static void hand_over(int ep, struct conn *c, int port, int i, uint64_t at, int measured) {
  c->busy = 1;
  c->sent_at = at;
  c->measured = measured;
  c->retries = 0;
  c->wrote = 0;
  c->rx_real = 0;
  if (write_req(c) != 0) resend(ep, c, port, i);
}

/* The answer's length once its head is in (head + Content-Length), else 0; its status in *status. */
static size_t answer_len(const struct conn *c, int *status) {
  const char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
  if (end == NULL) return 0;
  *status = c->got > 12 ? atoi(c->buf + 9) : 0;
  size_t body = 0;
  for (const char *p = c->buf; p < end;) {
    const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (nl == NULL) nl = end;
    if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) body = (size_t)strtoul(p + 15, NULL, 10);
    p = nl + 2;
  }
  return (size_t)(end - c->buf) + 4 + body;
}

static void arm(int tfd, uint64_t at) {
  struct itimerspec its = {0};
  its.it_value.tv_sec = (time_t)(at / 1000000000ull);
  its.it_value.tv_nsec = (long)(at % 1000000000ull);
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: open-load port rate duration_s warmup_s connections request_file\n");
    return 2;
  }
  int port = atoi(argv[1]), nconn = atoi(argv[5]);
  double rate = atof(argv[2]), duration = atof(argv[3]), warmup = atof(argv[4]);
  if (port <= 0 || !(rate > 0) || !(duration > 0) || !(warmup >= 0) || nconn < 1) {
    printf("{\"error\":\"open-load.c: port, rate, duration and connections must be > 0, warmup >= 0\"}\n");
    return 1;
  }
  FILE *f = fopen(argv[6], "rb");
  if (f == NULL) die("request file");
  req = malloc(1 << 20);
  req_len = fread(req, 1, 1 << 20, f);
  fclose(f);
  const char *trace_path = getenv("OPEN_LOAD_TRACE");
  if (trace_path != NULL && trace_path[0] != '\0' && (trace = fopen(trace_path, "w")) == NULL) die("OPEN_LOAD_TRACE");

  const uint64_t warm = (uint64_t)(rate * warmup), total = warm + (uint64_t)(rate * duration);
  const double period = 1e9 / rate;
  int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  if (ep < 0 || tfd < 0) die("epoll/timerfd");
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  struct conn *conns = calloc((size_t)nconn, sizeof *conns);
  int *free_list = malloc(sizeof(int) * (size_t)nconn), nfree = 0;
  for (int i = 0; i < nconn; i++) {
    conns[i].fd = open_conn(port);
    watch(ep, conns[i].fd, i);
    free_list[nfree++] = i;
  }
  /* Requests due while every connection was busy: their hand-over times and whether they count, in order. */
  uint64_t *wait_at = malloc(sizeof(uint64_t) * (size_t)total), wait_head = 0, wait_tail = 0;
  char *wait_measured = malloc((size_t)total);

  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  const uint64_t t0 = now_ns() + 20000000ull; /* 20 ms for the connections to open */
  const uint64_t deadline = t0 + (uint64_t)((warmup + duration + 20) * 1e9);
  uint64_t sent = 0, done = 0;
  arm(tfd, t0);
  struct epoll_event evs[256];
  while (done < total) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    if (now_ns() > deadline) {
      printf("{\"error\":\"open-load.c: watchdog: %llu of %llu answered\"}\n", (unsigned long long)done, (unsigned long long)total);
      return 1;
    }
    for (int k = 0; k < n; k++) {
      if (evs[k].data.u64 == UINT64_MAX) {
        uint64_t x;
        while (read(tfd, &x, sizeof x) > 0) {
        }
        continue;
      }
      const int ci = (int)evs[k].data.u64;
      struct conn *c = &conns[ci];
      if (!c->busy) {
        /* An idle connection the server closed (its keep-alive timeout): open it again, in place. */
        if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          char b;
          ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
          if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) reopen(ep, c, port, ci);
        }
        continue;
      }
      if (c->wrote < req_len && write_req(c) != 0) {
        resend(ep, c, port, ci);
        continue;
      }
      for (;;) {
        ssize_t r = read_stamped(c);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {
          /* closed before any of the answer came: the keep-alive race; after part of it: an error */
          if (c->got == 0 && (r == 0 || errno == ECONNRESET)) {
            resend(ep, c, port, ci);
            break;
          }
          die(r == 0 ? "connection closed by the server mid-answer" : "read");
        }
        c->got += (size_t)r;
        int status = 0;
        size_t len = answer_len(c, &status);
        if (len == 0 || c->got < len) {
          if (c->got == RBUF) die("answer larger than the read buffer");
          continue;
        }
        const uint64_t read_at = now_ns(), stamp = received_at(c, read_at), at = stamp != 0 ? stamp : read_at;
        if (status < 200 || status > 299) non2xx++;
        if (c->measured) {
          double ms = (double)(at - c->sent_at) / 1e6, late = (double)(read_at - at) / 1e6;
          record(hist, ms);
          record(read_lag_hist, late);
          count++;
          if (stamp != 0) stamped++;
          if (ms > max_ms) max_ms = ms;
          if (late > max_read_lag_ms) max_read_lag_ms = late;
          codes[status > 0 && status < 600 ? status : 0]++;
          if (trace != NULL) fprintf(trace, "%llu %llu %llu\n", (unsigned long long)((c->sent_at - t0) / 1000), (unsigned long long)((at - c->sent_at) / 1000), (unsigned long long)((read_at - at) / 1000));
        }
        memmove(c->buf, c->buf + len, c->got - len);
        c->got -= len;
        c->busy = 0;
        done++;
        if (wait_head < wait_tail) {
          /* the oldest waiting request takes this connection, timed from its hand-over */
          hand_over(ep, c, port, ci, wait_at[wait_head], wait_measured[wait_head]);
          wait_head++;
        } else {
          free_list[nfree++] = ci;
          break;
        }
      }
    }
    /* Hand over every request due by now. */
    uint64_t t = now_ns();
    if (sent < total && t >= t0) {
      uint64_t due = (uint64_t)((double)(t - t0) / period) + 1;
      if (due > total) due = total;
      if (due > sent && sent >= warm) {
        double lag = ((double)(t - t0) - (double)sent * period) / 1e6;
        record(lag_hist, lag);
        lag_count++;
        if (lag > max_lag_ms) max_lag_ms = lag;
      }
      for (; sent < due; sent++) {
        int measured = sent >= warm;
        if (nfree > 0 && wait_head == wait_tail) {
          int ci = free_list[--nfree];
          hand_over(ep, &conns[ci], port, ci, t, measured);
        } else {
          wait_at[wait_tail] = t;
          wait_measured[wait_tail++] = (char)measured;
        }
      }
      if (sent < total) arm(tfd, t0 + (uint64_t)((double)sent * period));
    }
  }
  if (trace != NULL) fclose(trace);
  double wall = (double)(now_ns() - t0) / 1e9;
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  printf("{\"requests\":%llu,\"rps\":%.3f,\"durationS\":%g,\"non2xx\":%llu,\"errors\":0,\"timeouts\":0,\"mismatches\":0,\"resets\":0,\"statusCodeStats\":{",
         (unsigned long long)count, (double)count / duration, duration, (unsigned long long)non2xx);
  int first = 1;
  for (int i = 0; i < 600; i++) {
    if (codes[i] == 0) continue;
    printf("%s\"%d\":{\"count\":%llu}", first ? "" : ",", i, (unsigned long long)codes[i]);
    first = 0;
  }
  printf("},\"hist\":{\"bucketUs\":%d,\"sparse\":[", BUCKET_US);
  first = 1;
  for (size_t i = 0; i < MAX_BUCKETS; i++) {
    if (hist[i] == 0) continue;
    printf("%s%zu,%u", first ? "" : ",", i, hist[i]);
    first = 0;
  }
  printf("],\"count\":%llu,\"maxMs\":%.3f},\"maxIssueLagMs\":%.3f,\"loopDelayP99Ms\":%.3f,\"stamped\":%llu,\"readLagP99Ms\":%.3f,\"maxReadLagMs\":%.3f,\"loadgenCpuS\":%.4f,\"wallS\":%.3f,\"generator\":\"native\"}\n",
         (unsigned long long)count, max_ms, max_lag_ms, percentile(lag_hist, lag_count, 0.99), (unsigned long long)stamped, percentile(read_lag_hist, count, 0.99), max_read_lag_ms, cpu, wall);
  return 0;
}

/* The workload of the real-node e2e tests and the pod-start benchmark, linked statically into an
 * image of its own (no shell, no libc in the image).
 *
 *   netcheck serve PORT          answers every TCP connection with "<hostname>\n" and closes it
 *   netcheck get HOST PORT [MS]  connects (at most MS milliseconds, default 2000), prints the
 *                                answer; exit 0 on an answer, 1 with the reason on stderr
 *   netcheck time HOST PORT [MS] as get, and prints "<answer> <milliseconds>" on one line: the
 *                                time from connect() to the server's close (the demo shows it)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static int serve(const char *port) {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  size_t len = strlen(name);
  name[len++] = '\n';
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int off = 0, on = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);  // IPv4 and IPv6
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in6 addr = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)atoi(port))};
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0) {
    perror("netcheck serve");
    return 1;
  }
  fprintf(stderr, "netcheck: serving %s on port %s\n", name, port);
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    ssize_t n = write(c, name, len);
    (void)n;
    close(c);
  }
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int get(const char *host, const char *port, int timeout_ms, int timed) {
  // Numeric addresses only: a static binary has no resolver, and the tests name pods by IP.
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)atoi(port))};
  struct sockaddr *sa;
  socklen_t salen;
  if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) {
    sa = (struct sockaddr *)&v4;
    salen = sizeof v4;
  } else if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
    sa = (struct sockaddr *)&v6;
    salen = sizeof v6;
  } else {
    fprintf(stderr, "netcheck get %s: not an IPv4 or IPv6 address\n", host);
    return 1;
  }
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  double start = now_ms();
  if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
    fprintf(stderr, "netcheck get %s:%s: %s\n", host, port, strerror(errno));
    return 1;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  char buf[512];
  size_t got = 0;
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r == 0) {
      fprintf(stderr, "netcheck get %s:%s: timed out after %d ms\n", host, port, timeout_ms);
      return 1;
    }
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n < 0 && errno == EAGAIN) continue;
    if (n < 0) {
      fprintf(stderr, "netcheck get %s:%s: %s\n", host, port, strerror(errno));
      return 1;
    }
    if (n == 0) break;
    got += (size_t)n;
    if (got == sizeof buf - 1) break;
  }
  if (got == 0) {
    fprintf(stderr, "netcheck get %s:%s: closed without an answer\n", host, port);
    return 1;
  }
  if (timed) {
    double ms = now_ms() - start;
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) got--;
    printf("%.*s %.3f\n", (int)got, buf, ms);
    return 0;
  }
  fwrite(buf, 1, got, stdout);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(argv[2]);
  int timed = argc >= 2 && strcmp(argv[1], "time") == 0;
  if ((argc == 4 || argc == 5) && (timed || strcmp(argv[1], "get") == 0))
    return get(argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 2000, timed);
  fprintf(stderr, "usage: netcheck serve PORT | netcheck get|time HOST PORT [TIMEOUT_MS]\n");
  return 2;
}

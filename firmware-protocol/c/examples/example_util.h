/* Small helpers the Linux examples share: a hex key from the command line, the uptime, a new
 * session from the kernel's random numbers. */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "locker_proto.h"

/* 64 hex digits into 32 bytes; 1 when well formed. */
static inline int example_hex_key(const char *hex, uint8_t out[LP_KEY_LEN]) {
    unsigned i;
    if (strlen(hex) != 2u * LP_KEY_LEN) {
        return 0;
    }
    for (i = 0; i < LP_KEY_LEN; i++) {
        unsigned v;
        if (sscanf(hex + 2u * i, "%2x", &v) != 1) {
            return 0;
        }
        out[i] = (uint8_t)v;
    }
    return 1;
}

/* Milliseconds since `start`. */
static inline uint64_t example_uptime_ms(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - start->tv_sec) * 1000u +
           (uint64_t)((now.tv_nsec - start->tv_nsec) / 1000000);
}

/* A new session: random, never 0 (PROTOCOL.md 7.1). */
static inline uint32_t example_session(void) {
    uint32_t session = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    while (session == 0u) {
        if (fd < 0 || read(fd, &session, sizeof session) != (ssize_t)sizeof session) {
            session = (uint32_t)time(NULL) ^ (uint32_t)getpid();
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return session;
}

#endif

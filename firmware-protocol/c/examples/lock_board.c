/*
 * lock_board: a lock board for Linux on a serial port (termios), built on locker_proto.
 *
 *   lock_board PORT ADDRESS DEVICE_ID SECRET_HEX DOORS
 *
 * It opens PORT (9600 baud 8N1 raw; a pseudo-terminal works too), flushes what is waiting in
 * its receive buffer (PROTOCOL.md 7.6, a backlog on the line) and then answers the gateway's
 * requests addressed to ADDRESS as PROTOCOL.md sections 5 and 7 ask of a board: a hello opening
 * a session, unlocks and configures checked by the library's guard, polls answered from the
 * board's queue of door events and alarms, query_state with the recent outcomes and door
 * results (protocol version 2).
 *
 * The doors are simulated: a pulsed door opens at once (unless jammed: then a `jammed` alarm
 * when the open window has passed). Lines on standard input act on them:
 *   close D    someone closes door D           force D    door D is forced open
 *   jam D      door D jams from now on         cut        a power cut right after the next
 *                                                         command is executed (exit 75, no answer)
 * It exits when standard input closes. It prints what it does on standard output, one line
 * each: "session S", "pulse D COMMAND", "open D", "closed D", "jammed D", "configured",
 * "rebooted". With LOCK_BOARD_FLASH and LOCK_BOARD_VENDOR_KEY it takes firmware updates
 * (lock_board_update.c).
 */
#define _DEFAULT_SOURCE /* cfmakeraw */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "example_util.h"
#include "lock_board_update.h"
#include "locker_proto.h"

#define MAX_DOORS 64u
#define GAP_MS 10      /* the board's inter-frame gap (PROTOCOL.md 7.6: 4.2 to 20 ms) */
#define POWER_CUT 75   /* exit status of a simulated power cut */

typedef struct {
    uint8_t sensor, locked, jammed;
    uint8_t watching;    /* a pulse whose opening is awaited (a jammed door) */
    uint64_t pulsed_at;  /* uptime of that pulse */
    uint64_t command_id; /* the command behind it */
} door_state;

static struct {
    int fd;
    uint8_t address;
    char id[LP_MAX_DEVICE_ID + 1];
    uint8_t key[LP_KEY_LEN];
    uint16_t doors;
    int in_session;
    lp_guard guard;
    uint32_t next_up;   /* the next uplink counter */
    uint32_t last_sent; /* the counter of the last uplink sent */
    lp_board_queue queue;
    door_state door[MAX_DOORS + 1];
    lp_door_result results[LP_MAX_RECENT]; /* a ring, oldest at results_first */
    uint8_t results_first, results_count;
    uint16_t open_window_ms; /* settings (kept in flash on real hardware) */
    int cut_after_next;
    struct timespec start;
} b;

static uint64_t uptime_ms(void) { return example_uptime_ms(&b.start); }

static void say(const char *what, unsigned long a, unsigned long long c) {
    printf("%s %lu %llu\n", what, a, c);
    fflush(stdout);
}

static int open_port(const char *path) {
    struct termios tty;
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0) {
        return -1;
    }
    if (tcgetattr(fd, &tty) == 0) {
        cfmakeraw(&tty);
        cfsetispeed(&tty, B9600);
        cfsetospeed(&tty, B9600);
        tty.c_cflag |= CLOCAL | CREAD;
        tty.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB);
        tcsetattr(fd, TCSANOW, &tty);
    }
    tcflush(fd, TCIFLUSH); /* requests sent before we could answer are not ours to answer */
    return fd;
}

/* Seals, frames and writes one uplink of the current session with `counter`. */
static void send_uplink(uint8_t type, const uint8_t *body, size_t len, uint32_t counter) {
    lp_envelope env;
    uint8_t sealed[LP_MAX_ENVELOPE], frame[LP_MAX_FRAME];
    size_t sealed_len, frame_len, off = 0;
    if (lp_envelope_init(&env, LP_UP, LP_BINARY, b.id, b.guard.session, counter, type) != LP_OK) {
        return;
    }
    env.body = body;
    env.body_len = (uint16_t)len;
    if (lp_envelope_seal(&env, b.key, sealed, sizeof sealed, &sealed_len) != LP_OK ||
        lp_frame_encode(b.address, sealed, sealed_len, frame, sizeof frame, &frame_len) != LP_OK) {
        return;
    }
    while (off < frame_len) {
        ssize_t n = write(b.fd, frame + off, frame_len - off);
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            return; /* the line is gone; the gateway will ask again */
        }
        off += n > 0 ? (size_t)n : 0u;
    }
    b.last_sent = counter;
}

/* An answer with the next uplink counter. */
static void answer(uint8_t type, const uint8_t *body, size_t len) {
    send_uplink(type, body, len, b.next_up++);
}

static void door_bytes(uint8_t *out) {
    uint16_t d;
    for (d = 1; d <= b.doors; d++) {
        out[d - 1] = LP_DOOR_BYTE(b.door[d].sensor, b.door[d].locked, LP_ITEM_NONE);
    }
}

static void hello(void) {
    lp_hello m;
    uint8_t body[128];
    size_t len;
    char serial[LP_MAX_DEVICE_ID + 3];
    snprintf(serial, sizeof serial, "C-%s", b.id);
    m.protocol_version = 2;
    m.firmware = board_firmware();
    m.serial_no = serial;
    m.door_count = b.doors;
    m.session = b.guard.session;
    m.uptime_ms = uptime_ms();
    m.max_chunk = board_max_chunk(); /* with LOCK_BOARD_FLASH: updates (section 11) */
    if (lp_write_hello(&m, body, sizeof body, &len) == LP_OK) {
        answer(LP_HELLO, body, len);
    }
}

static void new_session(void) {
    uint32_t session = example_session();
    lp_guard_init(&b.guard, 2, session);
    b.in_session = 1;
    b.next_up = 1;
    say("session", (unsigned long)session, 0);
    hello();
}

static void queue_event(uint16_t door, uint8_t motion, uint64_t command_id) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len;
    if (lp_write_door_event(door, motion, command_id, uptime_ms(), body, sizeof body, &len) ==
        LP_OK) {
        lp_queue_push(&b.queue, LP_DOOR_EVENT, body, (uint8_t)len);
    }
}

static void queue_alarm(uint8_t kind, uint16_t door) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len;
    if (lp_write_alarm(kind, door, uptime_ms(), body, sizeof body, &len) == LP_OK) {
        lp_queue_push(&b.queue, LP_ALARM, body, (uint8_t)len);
    }
}

static void door_result(uint64_t command_id, uint8_t outcome) {
    lp_door_result *r;
    if (b.results_count == LP_MAX_RECENT) {
        b.results_first = (uint8_t)((b.results_first + 1u) % LP_MAX_RECENT);
        b.results_count--;
    }
    r = &b.results[(b.results_first + b.results_count) % LP_MAX_RECENT];
    r->command_id = command_id;
    r->door = outcome;
    b.results_count++;
}

/* Pulses a door's relay for an unlock: the result for its ack. */
static uint8_t unlock(const lp_envelope *env) {
    lp_unlock u;
    door_state *d;
    if (lp_read_unlock(env->body, env->body_len, &u) != LP_OK) {
        return LP_MALFORMED;
    }
    if (u.door > b.doors) {
        return LP_NO_SUCH_DOOR;
    }
    if (u.expires_at_ms != 0u && uptime_ms() > u.expires_at_ms) {
        return LP_EXPIRED;
    }
    d = &b.door[u.door];
    if (d->watching) {
        return LP_BUSY;
    }
    say("pulse", u.door, (unsigned long long)u.command_id);
    if (d->sensor == LP_SENSOR_OPEN) {
        door_result(u.command_id, LP_DOOR_ALREADY_OPEN);
    } else if (d->jammed) {
        d->watching = 1;
        d->pulsed_at = uptime_ms();
        d->command_id = u.command_id;
    } else {
        d->sensor = LP_SENSOR_OPEN;
        d->locked = 0;
        queue_event(u.door, LP_OPENED, u.command_id);
        door_result(u.command_id, LP_DOOR_OPENED);
        say("open", u.door, 0);
    }
    return LP_EXECUTED;
}

static uint8_t configure(const lp_envelope *env) {
    lp_configure c;
    if (lp_read_configure(env->body, env->body_len, &c) != LP_OK) {
        return LP_MALFORMED;
    }
    if (c.expires_at_ms != 0u && uptime_ms() > c.expires_at_ms) {
        return LP_EXPIRED;
    }
    b.open_window_ms = c.open_window_ms;
    say("configured", c.open_window_ms, c.pulse_ms);
    return LP_EXECUTED;
}

static void ack(uint64_t command_id, uint8_t result) {
    uint8_t body[9];
    size_t len;
    if (lp_write_ack(command_id, result, body, sizeof body, &len) == LP_OK) {
        answer(LP_ACK, body, len);
    }
}

/* A power cut: RAM is gone with the process. */
static void power_cut(void) {
    say("power-cut", 0, 0);
    exit(POWER_CUT);
}

static void command(const lp_envelope *env) {
    uint64_t id;
    lp_verdict v;
    uint8_t result;
    if (!lp_read_command_id(env->body, env->body_len, &id)) {
        return; /* too short to name: no ack can answer it (7.6) */
    }
    v = lp_guard_check_command(&b.guard, env, id);
    if (v.kind != LP_EXECUTE) {
        ack(id, v.result); /* a refusal, or the stored result of an exact repeat */
        return;
    }
    result = env->type == LP_UNLOCK ? unlock(env) : configure(env);
    lp_guard_record(&b.guard, id, env->counter, result);
    if (b.cut_after_next && result == LP_EXECUTED) {
        power_cut();
    }
    ack(id, result);
}

static void state_report(uint32_t query_id) {
    uint8_t doors[MAX_DOORS], body[LP_MAX_BINARY_BODY];
    lp_outcome recent[LP_RECENT];
    lp_door_result results[LP_MAX_RECENT];
    uint8_t n = lp_guard_recent(&b.guard, recent), i;
    size_t len;
    for (i = 0; i < b.results_count; i++) {
        results[i] = b.results[(b.results_first + i) % LP_MAX_RECENT];
    }
    door_bytes(doors);
    if (lp_write_state_report(query_id, doors, b.doors, recent, n, results, b.results_count, body,
                              sizeof body, &len) == LP_OK) {
        answer(LP_STATE_REPORT, body, len);
    }
}

static void poll_answer(uint32_t ack_counter) {
    const lp_queued *up = NULL;
    uint32_t counter = 0;
    if (lp_queue_answer_poll(&b.queue, ack_counter, b.last_sent, b.next_up, &up, &counter) ==
        LP_SEND_QUEUED) {
        if (counter == b.next_up) {
            b.next_up++;
        }
        send_uplink(up->type, up->body, up->len, counter);
    } else {
        uint8_t doors[MAX_DOORS], body[11u + MAX_DOORS];
        size_t len;
        door_bytes(doors);
        if (lp_write_heartbeat(uptime_ms(), LP_SIGNAL_NONE, doors, b.doors, body, sizeof body,
                               &len) == LP_OK) {
            answer(LP_HEARTBEAT, body, len);
        }
    }
}

static void request(const lp_envelope *env) {
    uint32_t value = 0;
    lp_verdict v = lp_guard_check_request(&b.guard, env);
    if (v.kind != LP_EXECUTE) {
        if (v.result == LP_WRONG_SESSION) {
            hello(); /* announce the current session again (7.1) */
        }
        return; /* an old request: ignored */
    }
    if (env->type == LP_PING) {
        answer(LP_PONG, NULL, 0);
    } else if (env->type == LP_QUERY_STATE) {
        if (lp_read_query_state(env->body, env->body_len, &value) == LP_OK) {
            state_report(value);
        }
    } else if (env->type == LP_POLL) {
        if (lp_read_poll(env->body, env->body_len, &value) == LP_OK) {
            poll_answer(value);
        }
    } else if (board_update_message(env->type)) {
        lp_update_answer a;
        board_update(env, &a);
        if (a.type != 0u) {
            answer(a.type, a.body, a.len);
        }
        if (board_update_reboot()) {
            b.in_session = 0; /* rebooted into the new image: the next request opens a session */
            say("rebooted", 0, 0);
        }
    }
}

/* One whole frame from the line, checked in PROTOCOL.md 7.6's order. */
static void frame(const lp_frame *f) {
    lp_envelope env;
    uint8_t tag[LP_TAG_LEN];
    int is_command;
    uint64_t id;
    if (f->address != b.address || lp_envelope_parse(f->envelope, f->len, &env, tag) != LP_OK ||
        env.direction != LP_DOWN || env.type >= 0x80u) {
        return;
    }
    is_command = env.type == LP_UNLOCK || env.type == LP_CONFIGURE;
    if (strcmp(env.device_id, b.id) != 0 ||
        lp_envelope_open(f->envelope, f->len, b.key, &env) != LP_OK) {
        if (b.in_session && is_command && lp_read_command_id(env.body, env.body_len, &id)) {
            ack(id, LP_REFUSED_BAD_TAG);
        }
        return;
    }
    if (!b.in_session) {
        new_session();
    } else if (is_command) {
        command(&env);
    } else {
        request(&env);
    }
}

/* A door whose pulse did not open it within the window: jammed. */
static void watch_doors(void) {
    uint16_t d;
    for (d = 1; d <= b.doors; d++) {
        door_state *s = &b.door[d];
        if (s->watching && uptime_ms() - s->pulsed_at >= b.open_window_ms) {
            s->watching = 0;
            queue_alarm(LP_JAMMED, d);
            door_result(s->command_id, LP_DOOR_NOT_OPENED);
            say("jammed", d, 0);
        }
    }
}

/* One console line: acts on the doors. */
static void console_line(const char *line) {
    char what[16];
    unsigned door = 0;
    if (sscanf(line, "%15s %u", what, &door) < 1) {
        return;
    }
    if (strcmp(what, "cut") == 0) {
        b.cut_after_next = 1;
    } else if (door >= 1 && door <= b.doors) {
        door_state *d = &b.door[door];
        if (strcmp(what, "close") == 0 && d->sensor == LP_SENSOR_OPEN) {
            d->sensor = LP_SENSOR_CLOSED;
            d->locked = 1;
            queue_event((uint16_t)door, LP_CLOSED, 0);
            say("closed", door, 0);
        } else if (strcmp(what, "force") == 0 && d->sensor == LP_SENSOR_CLOSED) {
            d->sensor = LP_SENSOR_OPEN;
            d->locked = 0;
            queue_event((uint16_t)door, LP_OPENED, 0);
            queue_alarm(LP_FORCED_OPEN, (uint16_t)door);
            say("open", door, 0);
        } else if (strcmp(what, "jam") == 0) {
            d->jammed = 1;
        }
    }
}

/* Reads standard input, a line at a time; 0 when it closed. */
static int console(void) {
    static char line[64];
    static size_t used;
    char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n <= 0) {
        return n < 0 && errno == EINTR;
    }
    if (c == '\n' || used == sizeof line - 1u) {
        line[used] = '\0';
        used = 0;
        console_line(line);
    } else {
        line[used++] = c;
    }
    return 1;
}

int main(int argc, char **argv) {
    lp_decoder dec;
    lp_frame f;
    uint8_t secret[LP_KEY_LEN], buf[256];
    uint16_t d;
    long address, doors;
    if (argc != 6) {
        fprintf(stderr, "usage: lock_board PORT ADDRESS DEVICE_ID SECRET_HEX DOORS\n");
        return 2;
    }
    address = strtol(argv[2], NULL, 10);
    doors = strtol(argv[5], NULL, 10);
    if (address < (long)LP_MIN_ADDRESS || address > (long)LP_MAX_ADDRESS || doors < 1 ||
        doors > (long)MAX_DOORS || strlen(argv[3]) < 1 || strlen(argv[3]) > LP_MAX_DEVICE_ID ||
        !example_hex_key(argv[4], secret)) {
        fprintf(stderr, "lock_board: a bad address, door count, device id or secret\n");
        return 2;
    }
    memset(&b, 0, sizeof b);
    b.address = (uint8_t)address;
    b.doors = (uint16_t)doors;
    strcpy(b.id, argv[3]);
    lp_derive_tag_key(secret, b.key);
    b.open_window_ms = 10000;
    for (d = 1; d <= b.doors; d++) {
        b.door[d].sensor = LP_SENSOR_CLOSED;
        b.door[d].locked = 1;
    }
    lp_queue_init(&b.queue);
    board_update_init();
    lp_decoder_init(&dec);
    clock_gettime(CLOCK_MONOTONIC, &b.start);
    b.fd = open_port(argv[1]);
    if (b.fd < 0) {
        fprintf(stderr, "lock_board: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    say("ready", b.address, 0);
    for (;;) {
        struct pollfd fds[2];
        int ready;
        fds[0].fd = b.fd;
        fds[0].events = POLLIN;
        fds[1].fd = STDIN_FILENO;
        fds[1].events = POLLIN;
        ready = poll(fds, 2, GAP_MS);
        watch_doors();
        if (ready < 0 && errno != EINTR) {
            return 1;
        }
        if (ready == 0) {
            while (lp_decoder_gap(&dec, &f)) {
                frame(&f); /* a whole frame found behind a broken one */
            }
            continue;
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!console()) {
                return 0;
            }
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(b.fd, buf, sizeof buf), i;
            for (i = 0; i < n; i++) {
                if (lp_decoder_feed(&dec, buf[i], &f)) {
                    frame(&f);
                }
            }
        } else if (fds[0].revents & (POLLHUP | POLLERR)) {
            usleep(20000); /* nobody on the other end yet */
        }
    }
}

/*
 * mqtt_locker: a locker for Linux speaking MQTT (libmosquitto), over TLS, built on locker_proto.
 *
 *   mqtt_locker HOST PORT CA_FILE DEVICE_ID SECRET_HEX DOORS
 *
 * CA_FILE is the operator's CA certificate (PEM) the broker's certificate is checked against
 * (name and chain); "-" connects without TLS. It does what PROTOCOL.md section 6 asks: a new
 * session chosen before each connect, the will naming it, a clean session, its own down topic
 * subscribed, presence published retained, then a hello and at once a heartbeat (7.6); downlinks
 * checked by the library's guard in 7.6's order; door events and alarms sent when they happen,
 * or kept while offline and sent after the next hello; a heartbeat every heartbeat_secs.
 *
 * Standard input acts on the simulated doors and the link:
 *   close D / force D / jam D   as the lock board example
 *   cut                         a power cut right after the next command (exit 75, no answer)
 *   drop                        the connection is lost (no DISCONNECT: the will fires); the
 *                               locker reconnects with a new session and keeps its outcomes
 *   quit                        a clean shutdown: presence offline, DISCONNECT, exit 0
 * It prints one line per thing it does: "session S", "pulse D COMMAND", "open D", "closed D",
 * "jammed D", "configured W P", "connected", "offline".
 * LP_EXAMPLE_RECONNECT_MS sets the wait before reconnecting (default: random 1 to 30 s).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "example_util.h"
#include "locker_proto.h"

#define MAX_DOORS 64u
#define POWER_CUT 75

typedef struct {
    uint8_t sensor, locked, jammed, watching;
    uint64_t pulsed_at, command_id;
} door_state;

static struct {
    struct mosquitto *mosq;
    char id[LP_MAX_DEVICE_ID + 1], up[64], down[64], status[64];
    uint8_t key[LP_KEY_LEN];
    uint16_t doors;
    int online, booted, cut_after_next;
    lp_guard guard;
    uint32_t next_up;
    lp_board_queue offline; /* door events and alarms while there is no session */
    door_state door[MAX_DOORS + 1];
    lp_door_result results[LP_MAX_RECENT];
    uint8_t results_first, results_count;
    uint16_t heartbeat_secs, open_window_ms;
    uint64_t last_heartbeat;
    struct timespec start;
} l;

static uint64_t uptime_ms(void) { return example_uptime_ms(&l.start); }

static void say(const char *what, unsigned long a, unsigned long long c) {
    printf("%s %lu %llu\n", what, a, c);
    fflush(stdout);
}

/* Publishes one uplink (its binary body written as JSON) with the next counter. */
static void publish(uint8_t type, const uint8_t *body, size_t len) {
    static char json[LP_MAX_JSON_BODY], payload[LP_MAX_JSON_BODY + 512];
    lp_envelope env;
    size_t json_len, payload_len;
    if (lp_json_from_binary(type, body, len, json, sizeof json, &json_len) != LP_OK ||
        lp_envelope_init(&env, LP_UP, LP_JSON, l.id, l.guard.session, l.next_up, type) != LP_OK) {
        return;
    }
    env.body = (const uint8_t *)json;
    env.body_len = (uint16_t)json_len;
    if (lp_json_seal(&env, l.key, payload, sizeof payload, &payload_len) == LP_OK) {
        mosquitto_publish(l.mosq, NULL, l.up, (int)payload_len, payload, 1, false);
        l.next_up++;
    }
}

static void door_bytes(uint8_t *out) {
    uint16_t d;
    for (d = 1; d <= l.doors; d++) {
        out[d - 1] = LP_DOOR_BYTE(l.door[d].sensor, l.door[d].locked, LP_ITEM_NONE);
    }
}

static void heartbeat(void) {
    uint8_t doors[MAX_DOORS], body[11u + MAX_DOORS];
    size_t len;
    door_bytes(doors);
    if (lp_write_heartbeat(uptime_ms(), LP_SIGNAL_NONE, doors, l.doors, body, sizeof body, &len) ==
        LP_OK) {
        publish(LP_HEARTBEAT, body, len);
        l.last_heartbeat = uptime_ms();
    }
}

/* A door event or alarm: at once when online, else kept for the next session. */
static void event(uint8_t type, const uint8_t *body, size_t len) {
    if (l.online) {
        publish(type, body, len);
    } else {
        lp_queue_push(&l.offline, type, body, (uint8_t)len);
    }
}

static void door_event(uint16_t door, uint8_t motion, uint64_t command_id) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len;
    if (lp_write_door_event(door, motion, command_id, uptime_ms(), body, sizeof body, &len) ==
        LP_OK) {
        event(LP_DOOR_EVENT, body, len);
    }
}

static void alarm_raised(uint8_t kind, uint16_t door) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len;
    if (lp_write_alarm(kind, door, uptime_ms(), body, sizeof body, &len) == LP_OK) {
        event(LP_ALARM, body, len);
    }
}

static void door_result(uint64_t command_id, uint8_t outcome) {
    lp_door_result *r;
    if (l.results_count == LP_MAX_RECENT) {
        l.results_first = (uint8_t)((l.results_first + 1u) % LP_MAX_RECENT);
        l.results_count--;
    }
    r = &l.results[(l.results_first + l.results_count) % LP_MAX_RECENT];
    r->command_id = command_id;
    r->door = outcome;
    l.results_count++;
}

static void ack(uint64_t command_id, uint8_t result) {
    uint8_t body[9];
    size_t len;
    if (lp_write_ack(command_id, result, body, sizeof body, &len) == LP_OK) {
        publish(LP_ACK, body, len);
    }
}

static uint8_t unlock(const uint8_t *bin, size_t n) {
    lp_unlock u;
    door_state *d;
    if (lp_read_unlock(bin, n, &u) != LP_OK) return LP_MALFORMED;
    if (u.door > l.doors) return LP_NO_SUCH_DOOR;
    if (u.expires_at_ms != 0u && uptime_ms() > u.expires_at_ms) return LP_EXPIRED;
    d = &l.door[u.door];
    if (d->watching) return LP_BUSY;
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
        door_result(u.command_id, LP_DOOR_OPENED);
        d->command_id = u.command_id; /* its event goes out after the ack */
        d->watching = 2;
        say("open", u.door, 0);
    }
    return LP_EXECUTED;
}

static uint8_t configure(const uint8_t *bin, size_t n) {
    lp_configure c;
    if (lp_read_configure(bin, n, &c) != LP_OK) return LP_MALFORMED;
    if (c.expires_at_ms != 0u && uptime_ms() > c.expires_at_ms) return LP_EXPIRED;
    l.heartbeat_secs = c.heartbeat_secs;
    l.open_window_ms = c.open_window_ms;
    say("configured", c.open_window_ms, c.pulse_ms);
    return LP_EXECUTED;
}

/* Door events of doors opened by the last command: after its ack. */
static void opened_events(void) {
    uint16_t d;
    for (d = 1; d <= l.doors; d++) {
        if (l.door[d].watching == 2) {
            l.door[d].watching = 0;
            door_event(d, LP_OPENED, l.door[d].command_id);
        }
    }
}

static void command(const lp_envelope *env) {
    uint8_t bin[64];
    size_t n = 0;
    uint64_t id;
    lp_verdict v;
    uint8_t result;
    lp_status st = lp_json_to_binary(env->type, (const char *)env->body, env->body_len, bin,
                                     sizeof bin, &n);
    if (!lp_json_command_id((const char *)env->body, env->body_len, &id)) {
        return; /* no id: no ack can answer it */
    }
    v = lp_guard_check_command(&l.guard, env, id);
    if (v.kind != LP_EXECUTE) {
        ack(id, v.result);
        return;
    }
    if (st != LP_OK) {
        result = LP_MALFORMED;
    } else {
        result = env->type == LP_UNLOCK ? unlock(bin, n) : configure(bin, n);
    }
    lp_guard_record(&l.guard, id, env->counter, result);
    if (l.cut_after_next && result == LP_EXECUTED) {
        say("power-cut", 0, 0);
        exit(POWER_CUT);
    }
    ack(id, result);
    opened_events();
}

static void state_report(uint32_t query_id) {
    uint8_t doors[MAX_DOORS], body[LP_MAX_BINARY_BODY];
    lp_outcome recent[LP_RECENT];
    lp_door_result results[LP_MAX_RECENT];
    uint8_t n = lp_guard_recent(&l.guard, recent), i;
    size_t len;
    for (i = 0; i < l.results_count; i++) {
        results[i] = l.results[(l.results_first + i) % LP_MAX_RECENT];
    }
    door_bytes(doors);
    if (lp_write_state_report(query_id, doors, l.doors, recent, n, results, l.results_count,
                              body, sizeof body, &len) == LP_OK) {
        publish(LP_STATE_REPORT, body, len);
    }
}

static void hello(void) {
    lp_hello m;
    uint8_t body[128];
    size_t len;
    char serial[LP_MAX_DEVICE_ID + 3];
    snprintf(serial, sizeof serial, "C-%s", l.id);
    m.protocol_version = 2;
    m.firmware = "c-mqtt-locker-1.0";
    m.serial_no = serial;
    m.door_count = l.doors;
    m.session = l.guard.session;
    m.uptime_ms = uptime_ms();
    m.max_chunk = 0; /* this example takes no updates */
    if (lp_write_hello(&m, body, sizeof body, &len) == LP_OK) {
        publish(LP_HELLO, body, len);
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    static char body[LP_MAX_JSON_BODY];
    lp_envelope env;
    lp_status st;
    uint64_t id;
    (void)mosq;
    (void)obj;
    if (msg->payloadlen <= 0 || strcmp(msg->topic, l.down) != 0) return;
    st = lp_json_open((const char *)msg->payload, (size_t)msg->payloadlen, l.key, &env, body,
                      sizeof body);
    if (st == LP_ERR_BAD_TAG || (st == LP_OK && strcmp(env.device_id, l.id) != 0)) {
        if ((env.type == LP_UNLOCK || env.type == LP_CONFIGURE) &&
            lp_json_command_id((const char *)env.body, env.body_len, &id)) {
            ack(id, LP_REFUSED_BAD_TAG);
        }
        return;
    }
    if (st != LP_OK || env.direction != LP_DOWN) return;
    if (env.type == LP_UNLOCK || env.type == LP_CONFIGURE) {
        command(&env);
        return;
    }
    {
        lp_verdict v = lp_guard_check_request(&l.guard, &env);
        uint8_t bin[8];
        size_t n;
        if (v.kind != LP_EXECUTE) {
            if (v.result == LP_WRONG_SESSION) hello();
            return;
        }
        if (env.type == LP_PING) {
            publish(LP_PONG, NULL, 0);
        } else if (env.type == LP_QUERY_STATE &&
                   lp_json_to_binary(env.type, (const char *)env.body, env.body_len, bin,
                                     sizeof bin, &n) == LP_OK) {
            uint32_t query_id;
            if (lp_read_query_state(bin, n, &query_id) == LP_OK) state_report(query_id);
        }
    }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    char presence[64];
    uint8_t i;
    (void)obj;
    if (rc != 0) return;
    mosquitto_subscribe(mosq, NULL, l.down, 1);
    snprintf(presence, sizeof presence, "{\"online\":true,\"session\":%lu}",
             (unsigned long)l.guard.session);
    mosquitto_publish(mosq, NULL, l.status, (int)strlen(presence), presence, 1, true);
    l.online = 1;
    hello();
    heartbeat();
    /* What happened while offline, numbered now. */
    for (i = 0; i < l.offline.count; i++) {
        const lp_queued *q = &l.offline.items[(l.offline.first + i) % LP_QUEUE];
        publish(q->type, q->body, q->len);
    }
    lp_queue_init(&l.offline);
    say("connected", 0, 0);
}

/* Chooses the session of the next connection and names it in the will. */
static void next_session(void) {
    char will[64];
    uint32_t session = example_session();
    if (!l.booted) {
        lp_guard_init(&l.guard, 2, session); /* after power-up: nothing remembered */
        l.booted = 1;
    } else {
        lp_guard_renew(&l.guard, session); /* a reconnect: the recent outcomes stay */
    }
    l.next_up = 1;
    snprintf(will, sizeof will, "{\"online\":false,\"session\":%lu}", (unsigned long)session);
    mosquitto_will_set(l.mosq, l.status, (int)strlen(will), will, 1, true);
    say("session", (unsigned long)session, 0);
}

static void watch_doors(void) {
    uint16_t d;
    for (d = 1; d <= l.doors; d++) {
        door_state *s = &l.door[d];
        if (s->watching == 1 && uptime_ms() - s->pulsed_at >= l.open_window_ms) {
            s->watching = 0;
            alarm_raised(LP_JAMMED, d);
            door_result(s->command_id, LP_DOOR_NOT_OPENED);
            say("jammed", d, 0);
        }
    }
    if (l.online && uptime_ms() - l.last_heartbeat >= 1000u * l.heartbeat_secs) heartbeat();
}

static int console_line(const char *line) {
    char what[16];
    unsigned door = 0;
    if (sscanf(line, "%15s %u", what, &door) < 1) return 1;
    if (strcmp(what, "cut") == 0) {
        l.cut_after_next = 1;
    } else if (strcmp(what, "drop") == 0) {
        shutdown(mosquitto_socket(l.mosq), SHUT_RDWR); /* no DISCONNECT: the will fires */
    } else if (strcmp(what, "quit") == 0) {
        char presence[64];
        snprintf(presence, sizeof presence, "{\"online\":false,\"session\":%lu}",
                 (unsigned long)l.guard.session);
        mosquitto_publish(l.mosq, NULL, l.status, (int)strlen(presence), presence, 1, true);
        mosquitto_loop(l.mosq, 100, 1);
        mosquitto_disconnect(l.mosq);
        return 0;
    } else if (door >= 1 && door <= l.doors) {
        door_state *d = &l.door[door];
        if (strcmp(what, "close") == 0 && d->sensor == LP_SENSOR_OPEN) {
            d->sensor = LP_SENSOR_CLOSED;
            d->locked = 1;
            door_event((uint16_t)door, LP_CLOSED, 0);
            say("closed", door, 0);
        } else if (strcmp(what, "force") == 0 && d->sensor == LP_SENSOR_CLOSED) {
            d->sensor = LP_SENSOR_OPEN;
            d->locked = 0;
            door_event((uint16_t)door, LP_OPENED, 0);
            alarm_raised(LP_FORCED_OPEN, (uint16_t)door);
            say("open", door, 0);
        } else if (strcmp(what, "jam") == 0) {
            d->jammed = 1;
        }
    }
    return 1;
}

/* Reads standard input, a line at a time; 0 when it closed or said quit. */
static int console(void) {
    static char line[64];
    static size_t used;
    char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n <= 0) return n < 0 && errno == EINTR;
    if (c != '\n' && used < sizeof line - 1u) {
        line[used++] = c;
        return 1;
    }
    line[used] = '\0';
    used = 0;
    return console_line(line);
}

static void wait_to_reconnect(void) {
    const char *fixed = getenv("LP_EXAMPLE_RECONNECT_MS");
    long ms = fixed != NULL ? strtol(fixed, NULL, 10) : 1000 + (long)(example_session() % 29000u);
    usleep((useconds_t)(ms > 0 ? ms : 1) * 1000u);
}

int main(int argc, char **argv) {
    uint8_t secret[LP_KEY_LEN];
    char password[2 * LP_KEY_LEN + 1];
    long port, doors;
    uint16_t d;
    if (argc != 7) {
        fprintf(stderr, "usage: mqtt_locker HOST PORT CA_FILE DEVICE_ID SECRET_HEX DOORS\n");
        return 2;
    }
    port = strtol(argv[2], NULL, 10);
    doors = strtol(argv[6], NULL, 10);
    if (port < 1 || port > 65535 || doors < 1 || doors > (long)MAX_DOORS ||
        strlen(argv[4]) < 1 || strlen(argv[4]) > LP_MAX_DEVICE_ID ||
        !example_hex_key(argv[5], secret)) {
        fprintf(stderr, "mqtt_locker: a bad port, door count, device id or secret\n");
        return 2;
    }
    memset(&l, 0, sizeof l);
    strcpy(l.id, argv[4]);
    snprintf(l.up, sizeof l.up, "lockers/%s/up", l.id);
    snprintf(l.down, sizeof l.down, "lockers/%s/down", l.id);
    snprintf(l.status, sizeof l.status, "lockers/%s/status", l.id);
    snprintf(password, sizeof password, "%s", argv[5]); /* the secret's hex (section 3) */
    lp_derive_tag_key(secret, l.key);
    l.doors = (uint16_t)doors;
    l.heartbeat_secs = 60;
    l.open_window_ms = 10000;
    for (d = 1; d <= l.doors; d++) {
        l.door[d].sensor = LP_SENSOR_CLOSED;
        l.door[d].locked = 1;
    }
    lp_queue_init(&l.offline);
    clock_gettime(CLOCK_MONOTONIC, &l.start);
    mosquitto_lib_init();
    l.mosq = mosquitto_new(l.id, true, NULL);
    if (l.mosq == NULL) return 1;
    mosquitto_username_pw_set(l.mosq, l.id, password);
    mosquitto_int_option(l.mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (strcmp(argv[3], "-") != 0 &&
        mosquitto_tls_set(l.mosq, argv[3], NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mqtt_locker: cannot use the CA file %s\n", argv[3]);
        return 1;
    }
    mosquitto_connect_callback_set(l.mosq, on_connect);
    mosquitto_message_callback_set(l.mosq, on_message);
    next_session();
    say("ready", 0, 0);
    while (mosquitto_connect(l.mosq, argv[1], (int)port, 30) != MOSQ_ERR_SUCCESS) {
        wait_to_reconnect();
    }
    for (;;) {
        struct pollfd in;
        int rc = mosquitto_loop(l.mosq, 10, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            if (l.online) say("offline", 0, 0);
            l.online = 0;
            wait_to_reconnect();
            next_session();
            mosquitto_reconnect(l.mosq);
        }
        in.fd = STDIN_FILENO;
        in.events = POLLIN;
        if (poll(&in, 1, 0) > 0 && !console()) break;
        watch_doors();
    }
    mosquitto_destroy(l.mosq);
    mosquitto_lib_cleanup();
    return 0;
}

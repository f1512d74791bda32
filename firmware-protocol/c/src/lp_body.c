/* Message bodies (PROTOCOL.md section 2.1): the downlinks a locker reads, the uplinks it writes. */
#include "locker_proto.h"

#include <string.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static uint32_t get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const uint8_t *p) {
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static uint8_t *put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
    p = put16(p, (uint16_t)(v >> 16));
    return put16(p, (uint16_t)v);
}

static uint8_t *put64(uint8_t *p, uint64_t v) {
    p = put32(p, (uint32_t)(v >> 32));
    return put32(p, (uint32_t)v);
}

static int id_ok(uint64_t id) { return id >= 1u && id <= LP_MAX_SAFE_INTEGER; }
static int door_ok(uint16_t door) { return door >= 1u && door <= LP_MAX_DOORS; }
static int uptime_ok(uint64_t ms) { return ms <= LP_MAX_SAFE_INTEGER; }

int lp_read_command_id(const uint8_t *body, size_t len, uint64_t *command_id) {
    if (len < 8u || !id_ok(get64(body))) {
        return 0;
    }
    *command_id = get64(body);
    return 1;
}

lp_status lp_read_unlock(const uint8_t *body, size_t len, lp_unlock *out) {
    if (len < 18u) {
        return LP_ERR_LENGTH;
    }
    out->command_id = get64(body);
    out->door = get16(body + 8);
    out->expires_at_ms = get64(body + 10);
    if (!id_ok(out->command_id) || !door_ok(out->door) || !uptime_ok(out->expires_at_ms)) {
        return LP_ERR_RANGE;
    }
    return LP_OK;
}

lp_status lp_read_configure(const uint8_t *body, size_t len, lp_configure *out) {
    if (len < 24u) {
        return LP_ERR_LENGTH;
    }
    out->command_id = get64(body);
    out->heartbeat_secs = get16(body + 8);
    out->open_window_ms = get16(body + 10);
    out->pulse_ms = get16(body + 12);
    out->ajar_alarm_secs = get16(body + 14);
    out->expires_at_ms = get64(body + 16);
    if (!id_ok(out->command_id) || out->heartbeat_secs < 5u || out->heartbeat_secs > 3600u ||
        out->open_window_ms < 1000u || out->open_window_ms > 60000u || out->pulse_ms < 50u ||
        out->pulse_ms > 5000u ||
        (out->ajar_alarm_secs != 0u && (out->ajar_alarm_secs < 10u || out->ajar_alarm_secs > 3600u)) ||
        !uptime_ok(out->expires_at_ms)) {
        return LP_ERR_RANGE;
    }
    return LP_OK;
}

lp_status lp_read_query_state(const uint8_t *body, size_t len, uint32_t *query_id) {
    if (len < 4u) {
        return LP_ERR_LENGTH;
    }
    *query_id = get32(body);
    return LP_OK;
}

lp_status lp_read_poll(const uint8_t *body, size_t len, uint32_t *ack_counter) {
    if (len < 4u) {
        return LP_ERR_LENGTH;
    }
    *ack_counter = get32(body);
    return LP_OK;
}

static size_t text_len(const char *text) {
    size_t n = 0;
    if (text == NULL) {
        return 0;
    }
    while (n <= LP_MAX_TEXT && text[n] != '\0') {
        if ((unsigned char)text[n] < 0x20u || (unsigned char)text[n] > 0x7Eu) {
            return 0;
        }
        n++;
    }
    return n > LP_MAX_TEXT ? 0u : n;
}

static int doors_ok(const uint8_t *doors, uint16_t count) {
    uint16_t i;
    if (count < 1u || count > LP_MAX_DOORS || doors == NULL) {
        return 0;
    }
    for (i = 0; i < count; i++) {
        /* sensor 3 and item sensor 3 are invalid; reserved bits are sent as 0 */
        if ((doors[i] & 3u) == 3u || ((doors[i] >> 3) & 3u) == 3u || (doors[i] & 0xE0u) != 0u) {
            return 0;
        }
    }
    return 1;
}

lp_status lp_write_hello(const lp_hello *m, uint8_t *out, size_t out_cap, size_t *out_len) {
    size_t f = text_len(m->firmware), s = text_len(m->serial_no);
    size_t n = 17u + f + s + (m->max_chunk != 0u ? 2u : 0u);
    uint8_t *p = out;
    if (m->protocol_version < 1u || m->protocol_version > 2u || f == 0u || s == 0u ||
        m->door_count < 1u || m->door_count > LP_MAX_DOORS || m->session == 0u ||
        !uptime_ok(m->uptime_ms) ||
        (m->max_chunk != 0u && (m->max_chunk < 16u || m->max_chunk > 32768u))) {
        return LP_ERR_RANGE;
    }
    if (out_cap < n) {
        return LP_ERR_SPACE;
    }
    *p++ = m->protocol_version;
    *p++ = (uint8_t)f;
    memcpy(p, m->firmware, f);
    p += f;
    *p++ = (uint8_t)s;
    memcpy(p, m->serial_no, s);
    p += s;
    p = put16(p, m->door_count);
    p = put32(p, m->session);
    p = put64(p, m->uptime_ms);
    if (m->max_chunk != 0u) {
        put16(p, m->max_chunk); /* appended: the locker takes updates (section 11) */
    }
    *out_len = n;
    return LP_OK;
}

lp_status lp_write_heartbeat(uint64_t uptime_ms, int signal_dbm, const uint8_t *doors,
                             uint16_t door_count, uint8_t *out, size_t out_cap, size_t *out_len) {
    size_t n = 11u + door_count;
    uint8_t *p;
    if (!uptime_ok(uptime_ms) || signal_dbm < LP_SIGNAL_NONE || signal_dbm > 127 ||
        !doors_ok(doors, door_count)) {
        return LP_ERR_RANGE;
    }
    if (out_cap < n) {
        return LP_ERR_SPACE;
    }
    p = put64(out, uptime_ms);
    *p++ = (uint8_t)(signal_dbm & 0xFF);
    p = put16(p, door_count);
    memcpy(p, doors, door_count);
    *out_len = n;
    return LP_OK;
}

lp_status lp_write_ack(uint64_t command_id, uint8_t result, uint8_t *out, size_t out_cap,
                       size_t *out_len) {
    if (!id_ok(command_id) || result > LP_MALFORMED) {
        return LP_ERR_RANGE;
    }
    if (out_cap < 9u) {
        return LP_ERR_SPACE;
    }
    out[8] = result;
    put64(out, command_id);
    *out_len = 9;
    return LP_OK;
}

lp_status lp_write_door_event(uint16_t door, uint8_t motion, uint64_t command_id,
                              uint64_t uptime_ms, uint8_t *out, size_t out_cap, size_t *out_len) {
    uint8_t *p;
    if (!door_ok(door) || (motion != LP_OPENED && motion != LP_CLOSED) ||
        (command_id != 0u && !id_ok(command_id)) || !uptime_ok(uptime_ms)) {
        return LP_ERR_RANGE;
    }
    if (out_cap < 19u) {
        return LP_ERR_SPACE;
    }
    p = put16(out, door);
    *p++ = motion;
    p = put64(p, command_id);
    put64(p, uptime_ms);
    *out_len = 19;
    return LP_OK;
}

lp_status lp_write_alarm(uint8_t kind, uint16_t door, uint64_t uptime_ms, uint8_t *out,
                         size_t out_cap, size_t *out_len) {
    uint8_t *p;
    if (kind < LP_FORCED_OPEN || kind > LP_JAMMED || (door != 0u && !door_ok(door)) ||
        !uptime_ok(uptime_ms)) {
        return LP_ERR_RANGE;
    }
    if (out_cap < 11u) {
        return LP_ERR_SPACE;
    }
    out[0] = kind;
    p = put16(out + 1, door);
    put64(p, uptime_ms);
    *out_len = 11;
    return LP_OK;
}

lp_status lp_write_state_report(uint32_t query_id, const uint8_t *doors, uint16_t door_count,
                                const lp_outcome *recent, uint8_t recent_count,
                                const lp_door_result *door_results, uint8_t door_result_count,
                                uint8_t *out, size_t out_cap, size_t *out_len) {
    size_t n = 7u + door_count + 9u * recent_count, room, first, i;
    uint8_t *p;
    if (!doors_ok(doors, door_count) || recent_count > LP_MAX_RECENT ||
        door_result_count > LP_MAX_RECENT || (recent_count > 0u && recent == NULL) ||
        (door_result_count > 0u && door_results == NULL)) {
        return LP_ERR_RANGE;
    }
    for (i = 0; i < recent_count; i++) {
        if (!id_ok(recent[i].command_id) || recent[i].result > LP_MALFORMED) {
            return LP_ERR_RANGE;
        }
    }
    for (i = 0; i < door_result_count; i++) {
        if (!id_ok(door_results[i].command_id) || door_results[i].door < LP_DOOR_OPENED ||
            door_results[i].door > LP_DOOR_NOT_OPENED) {
            return LP_ERR_RANGE;
        }
    }
    /* As many of the newest door results as the 1,024-byte body has room for. */
    room = n + 1u < LP_MAX_BINARY_BODY ? (LP_MAX_BINARY_BODY - n - 1u) / 9u : 0u;
    first = door_result_count > room ? door_result_count - room : 0u;
    if (door_result_count > first) {
        n += 1u + 9u * (door_result_count - first);
    }
    if (out_cap < n) {
        return LP_ERR_SPACE;
    }
    p = put32(out, query_id);
    p = put16(p, door_count);
    memcpy(p, doors, door_count);
    p += door_count;
    *p++ = recent_count;
    for (i = 0; i < recent_count; i++) {
        p = put64(p, recent[i].command_id);
        *p++ = recent[i].result;
    }
    if (door_result_count > first) {
        *p++ = (uint8_t)(door_result_count - first);
        for (i = first; i < door_result_count; i++) {
            p = put64(p, door_results[i].command_id);
            *p++ = door_results[i].door;
        }
    }
    *out_len = n;
    return LP_OK;
}

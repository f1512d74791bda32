/* A serial board's queue of door events and alarms and its answers to polls (PROTOCOL.md
 * section 5.3). */
#include "locker_proto.h"

#include <string.h>

void lp_queue_init(lp_board_queue *q) { memset(q, 0, sizeof *q); }

static lp_queued *at(lp_board_queue *q, uint8_t i) {
    return &q->items[(q->first + i) % LP_QUEUE];
}

/* Removes the i-th queued item (0 = oldest), keeping the order of the others. */
static void remove_at(lp_board_queue *q, uint8_t i) {
    for (; i + 1u < q->count; i++) {
        *at(q, i) = *at(q, (uint8_t)(i + 1u));
    }
    q->count--;
}

int lp_queue_push(lp_board_queue *q, uint8_t type, const uint8_t *body, uint8_t len) {
    lp_queued *slot;
    if ((type != LP_DOOR_EVENT && type != LP_ALARM) || len > LP_MAX_QUEUED_BODY ||
        (len > 0u && body == NULL)) {
        return 0;
    }
    if (q->count == LP_QUEUE) {
        uint8_t i;
        for (i = 0; i < q->count && at(q, i)->type != LP_DOOR_EVENT; i++) {
        }
        if (i < q->count) {
            remove_at(q, i); /* the oldest door event makes room */
        } else if (type == LP_DOOR_EVENT) {
            return 0; /* only alarms queued: they stay */
        } else {
            remove_at(q, 0);
        }
    }
    slot = at(q, q->count);
    slot->type = type;
    slot->len = len;
    if (len > 0u) {
        memcpy(slot->body, body, len);
    }
    q->count++;
    return 1;
}

lp_poll_answer lp_queue_answer_poll(lp_board_queue *q, uint32_t ack_counter, uint32_t last_sent,
                                    uint32_t next, const lp_queued **uplink, uint32_t *counter) {
    if (q->in_flight && q->flight_counter <= ack_counter) {
        q->in_flight = 0; /* the gateway has it */
    }
    if (!q->in_flight) {
        if (q->count == 0u) {
            *counter = next;
            return LP_SEND_HEARTBEAT;
        }
        q->flight = *at(q, 0);
        q->first = (uint8_t)((q->first + 1u) % LP_QUEUE);
        q->count--;
        q->in_flight = 1;
        q->flight_counter = next;
    } else if (q->flight_counter != last_sent) {
        /* Something else went out since: a fresh counter keeps the gateway's order. */
        q->flight_counter = next;
    }
    *uplink = &q->flight;
    *counter = q->flight_counter;
    return LP_SEND_QUEUED;
}

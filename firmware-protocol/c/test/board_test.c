/* A serial board's queue (lp_queue.c) against PROTOCOL.md section 5.3 and the sequences of
 * section 7.7. Exits 1 with what failed, or prints a summary. */
#include "locker_proto.h"

#include <stdio.h>
#include <string.h>

static unsigned checks, failures;

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s (%s:%d)\n", what, __FILE__, __LINE__);                  \
        }                                                                                    \
    } while (0)

/* The board's uplink counter: the last one sent. */
static uint32_t sent;

/* Polls with ack_counter; returns the answer's counter and type (0 for a heartbeat). */
static uint8_t poll(lp_board_queue *q, uint32_t ack, uint32_t *counter) {
    const lp_queued *uplink = NULL;
    lp_poll_answer a = lp_queue_answer_poll(q, ack, sent, sent + 1u, &uplink, counter);
    if (*counter == sent + 1u) {
        sent++;
    }
    return a == LP_SEND_HEARTBEAT ? 0u : uplink->type;
}

static uint8_t event(lp_board_queue *q, uint16_t door) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len = 0;
    lp_write_door_event(door, LP_CLOSED, 0, 1000u + door, body, sizeof body, &len);
    return (uint8_t)lp_queue_push(q, LP_DOOR_EVENT, body, (uint8_t)len);
}

static uint8_t alarm(lp_board_queue *q, uint16_t door) {
    uint8_t body[LP_MAX_QUEUED_BODY];
    size_t len = 0;
    lp_write_alarm(LP_FORCED_OPEN, door, 2000u + door, body, sizeof body, &len);
    return (uint8_t)lp_queue_push(q, LP_ALARM, body, (uint8_t)len);
}

int main(void) {
    lp_board_queue q;
    uint32_t c = 0, first;
    uint8_t i;
    const lp_queued *up = NULL;
    lp_queue_init(&q);
    sent = 1; /* the hello */

    CHECK(poll(&q, 0, &c) == 0 && c == 2, "nothing queued: a heartbeat, next counter");
    CHECK(event(&q, 3) == 1, "an event kept");
    CHECK(poll(&q, 0, &c) == LP_DOOR_EVENT && c == 3, "the event, numbered when sent");
    first = c;
    /* The answer was lost: the gateway repeats the poll. The same uplink, the same counter. */
    CHECK(poll(&q, 0, &c) == LP_DOOR_EVENT && c == first, "a repeated poll: the same counter");
    /* An ack goes out in between (counter 4): the event again, with the next counter. */
    sent++;
    CHECK(poll(&q, 0, &c) == LP_DOOR_EVENT && c == 5, "after another answer: the next counter");
    /* The gateway has it: dropped; nothing else queued. */
    CHECK(poll(&q, 5, &c) == 0 && c == 6, "acknowledged: a heartbeat");
    /* A repeated poll after a heartbeat: a fresh heartbeat (section 7.6). */
    CHECK(poll(&q, 5, &c) == 0 && c == 7, "a repeated poll after a heartbeat: a fresh one");

    /* Oldest first; an ack_counter below the one in flight does not drop it. */
    event(&q, 1);
    alarm(&q, 2);
    CHECK(poll(&q, 5, &c) == LP_DOOR_EVENT && c == 8, "oldest first");
    CHECK(poll(&q, 7, &c) == LP_DOOR_EVENT && c == 8, "not yet acknowledged");
    CHECK(poll(&q, 8, &c) == LP_ALARM && c == 9, "then the alarm");
    CHECK(poll(&q, 9, &c) == 0, "then a heartbeat");

    /* Full: the oldest door event makes room, alarms stay. */
    alarm(&q, 9);
    for (i = 1; i < LP_QUEUE; i++) {
        event(&q, i);
    }
    CHECK(q.count == LP_QUEUE, "full");
    CHECK(event(&q, 100) == 1 && q.count == LP_QUEUE, "a new event when full: kept");
    CHECK(lp_queue_answer_poll(&q, c, sent, sent + 1u, &up, &c) == LP_SEND_QUEUED &&
              up->type == LP_ALARM,
          "the alarm stayed, first");
    sent = c;
    CHECK(lp_queue_answer_poll(&q, c, sent, sent + 1u, &up, &c) == LP_SEND_QUEUED &&
              up->type == LP_DOOR_EVENT && up->body[1] == 2u,
          "the oldest door event (door 1) was dropped");
    sent = c;

    /* Only alarms: a door event is dropped, an alarm drops the oldest alarm. */
    lp_queue_forget(&q);
    for (i = 0; i < LP_QUEUE; i++) {
        alarm(&q, (uint16_t)(i + 1u));
    }
    CHECK(event(&q, 1) == 0 && q.count == LP_QUEUE, "a door event does not push out an alarm");
    CHECK(alarm(&q, 99) == 1 && q.count == LP_QUEUE, "an alarm when full of alarms: kept");
    CHECK(lp_queue_answer_poll(&q, 0, sent, sent + 1u, &up, &c) == LP_SEND_QUEUED &&
              up->body[2] == 2u,
          "the oldest alarm (door 1) made room");

    /* A power cut forgets everything. */
    lp_queue_forget(&q);
    CHECK(lp_queue_answer_poll(&q, 0, sent, sent + 1u, &up, &c) == LP_SEND_HEARTBEAT,
          "after a power cut: a heartbeat");
    CHECK(lp_queue_push(&q, LP_ACK, NULL, 0) == 0, "only door events and alarms are queued");

    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("lp_queue: %u checks passed\n", checks);
    return 0;
}

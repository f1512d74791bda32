/* The locker's rules for downlinks: the anti-replay window, sessions and the outcomes of its
 * last commands (PROTOCOL.md sections 7.1 and 7.2). */
#include "locker_proto.h"

#include <string.h>

int lp_window_check(const lp_window *w, uint32_t counter) {
    uint32_t behind;
    if (counter == 0u) {
        return 0;
    }
    if (counter > w->highest) {
        return 1;
    }
    behind = w->highest - counter;
    return behind < LP_WINDOW && (w->seen & ((uint64_t)1 << behind)) == 0u;
}

int lp_window_accept(lp_window *w, uint32_t counter) {
    if (!lp_window_check(w, counter)) {
        return 0;
    }
    if (counter > w->highest) {
        uint32_t ahead = counter - w->highest;
        w->seen = ahead >= LP_WINDOW ? 1u : (w->seen << ahead) | 1u;
        w->highest = counter;
    } else {
        w->seen |= (uint64_t)1 << (w->highest - counter);
    }
    return 1;
}

void lp_guard_init(lp_guard *g, uint8_t version, uint32_t session) {
    memset(g, 0, sizeof *g);
    g->version = version;
    g->session = session;
}

void lp_guard_renew(lp_guard *g, uint32_t session) {
    g->session = session;
    g->window.highest = 0;
    g->window.seen = 0;
}

/* Takes a counter: version 2 by the window, version 1 only above the last. */
static int take(lp_guard *g, uint32_t counter) {
    if (g->version >= 2u) {
        return lp_window_accept(&g->window, counter);
    }
    if (counter > g->window.highest) {
        g->window.highest = counter;
        g->window.seen = 1u;
        return 1;
    }
    return 0;
}

static lp_verdict verdict(lp_verdict_kind kind, uint8_t result) {
    lp_verdict v;
    v.kind = kind;
    v.result = result;
    return v;
}

lp_verdict lp_guard_check_command(lp_guard *g, const lp_envelope *env, uint64_t command_id) {
    uint8_t i;
    if (env->session != g->session) {
        return verdict(LP_REFUSE, LP_WRONG_SESSION);
    }
    if (take(g, env->counter)) {
        return verdict(LP_EXECUTE, LP_EXECUTED);
    }
    for (i = 0; i < g->count; i++) {
        const lp_handled *h = &g->recent[(g->first + i) % LP_RECENT];
        if (h->command_id == command_id && h->counter == env->counter) {
            return verdict(LP_REPEAT, h->result);
        }
    }
    return verdict(LP_REFUSE, LP_STALE_COUNTER);
}

lp_verdict lp_guard_check_request(lp_guard *g, const lp_envelope *env) {
    if (env->session != g->session) {
        return verdict(LP_REFUSE, LP_WRONG_SESSION);
    }
    if (take(g, env->counter)) {
        return verdict(LP_EXECUTE, LP_EXECUTED);
    }
    if (env->type == LP_POLL && env->counter != 0u && env->counter == g->window.highest) {
        return verdict(LP_EXECUTE, LP_EXECUTED);
    }
    return verdict(LP_REFUSE, LP_STALE_COUNTER);
}

void lp_guard_record(lp_guard *g, uint64_t command_id, uint32_t counter, uint8_t result) {
    lp_handled *h;
    if (g->count == LP_RECENT) {
        g->first = (uint8_t)((g->first + 1u) % LP_RECENT);
        g->count--;
    }
    h = &g->recent[(g->first + g->count) % LP_RECENT];
    h->command_id = command_id;
    h->counter = counter;
    h->result = result;
    g->count++;
}

uint8_t lp_guard_recent(const lp_guard *g, lp_outcome out[LP_RECENT]) {
    uint8_t i;
    for (i = 0; i < g->count; i++) {
        const lp_handled *h = &g->recent[(g->first + i) % LP_RECENT];
        out[i].command_id = h->command_id;
        out[i].result = h->result;
    }
    return g->count;
}

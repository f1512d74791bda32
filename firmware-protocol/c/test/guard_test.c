/* Checks the locker's downlink rules (lp_guard.c) against the Rust implementation, which the Rust
 * test c_guard.rs runs on the same random sequences and hands over on standard input:
 *
 *   window <counter> <1 accepted | 0 refused>
 *   window_state <highest> <seen>
 *   guard <version> <session>                      a new guard (a reboot)
 *   renew <session>                                a new session without a reboot
 *   command <session> <counter> <command id> <verdict> <result>
 *   request <type> <session> <counter> <verdict> <result>
 *   record <command id> <counter> <result>
 *   recent <command id:result,...>                 the outcomes remembered, oldest first
 *
 * where a verdict is 0 execute, 1 repeat, 2 refuse. Then the worked example of PROTOCOL.md
 * section 7.2, written out here. Prints what failed and exits 1, or a summary. */
#include "locker_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned checks, failures, line_no;

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL line %u: %s\n", line_no, what);                            \
        }                                                                                    \
    } while (0)

static lp_envelope down(uint8_t type, uint32_t session, uint32_t counter) {
    lp_envelope env;
    lp_envelope_init(&env, LP_DOWN, LP_BINARY, "lk-0001", session, counter, type);
    return env;
}

static void worked_example(void) {
    lp_guard v2, v1;
    lp_envelope env;
    lp_verdict v;
    line_no = 0;
    lp_guard_init(&v2, 2, 77);
    env = down(LP_UNLOCK, 77, 23);
    CHECK(lp_guard_check_command(&v2, &env, 1).kind == LP_EXECUTE, "example: 23 accepted");
    lp_guard_record(&v2, 1, 23, LP_EXECUTED);
    env = down(LP_UNLOCK, 77, 22);
    CHECK(lp_guard_check_command(&v2, &env, 2).kind == LP_EXECUTE, "example: 22 accepted after 23");
    lp_guard_record(&v2, 2, 22, LP_EXECUTED);
    v = lp_guard_check_command(&v2, &env, 3);
    CHECK(v.kind == LP_REFUSE && v.result == LP_STALE_COUNTER, "example: a second 22, another id");
    v = lp_guard_check_command(&v2, &env, 2);
    CHECK(v.kind == LP_REPEAT && v.result == LP_EXECUTED, "example: 22 resent, answered again");
    env = down(LP_UNLOCK, 77, 100);
    CHECK(lp_guard_check_command(&v2, &env, 4).kind == LP_EXECUTE, "example: 100 accepted");
    env = down(LP_UNLOCK, 77, 36);
    CHECK(lp_guard_check_command(&v2, &env, 5).kind == LP_REFUSE, "example: 36 is 64 below");
    env = down(LP_UNLOCK, 77, 37);
    CHECK(lp_guard_check_command(&v2, &env, 6).kind == LP_EXECUTE, "example: 37 is 63 below");
    env = down(LP_UNLOCK, 78, 101);
    v = lp_guard_check_command(&v2, &env, 7);
    CHECK(v.kind == LP_REFUSE && v.result == LP_WRONG_SESSION, "example: another session");
    lp_guard_init(&v1, 1, 77);
    env = down(LP_UNLOCK, 77, 23);
    CHECK(lp_guard_check_command(&v1, &env, 1).kind == LP_EXECUTE, "example v1: 23");
    env = down(LP_UNLOCK, 77, 22);
    CHECK(lp_guard_check_command(&v1, &env, 2).kind == LP_REFUSE, "example v1: 22 after 23 refused");
}

int main(void) {
    static char line[4096];
    lp_window w;
    lp_guard g;
    unsigned steps = 0;
    memset(&w, 0, sizeof w);
    lp_guard_init(&g, 1, 1);
    while (fgets(line, sizeof line, stdin) != NULL) {
        char word[32];
        unsigned long long a = 0, b = 0, c = 0, d = 0, e = 0;
        line_no++;
        if (sscanf(line, "%31s", word) != 1) {
            continue;
        }
        steps++;
        if (strcmp(word, "window") == 0 && sscanf(line, "%*s %llu %llu", &a, &b) == 2) {
            CHECK(lp_window_accept(&w, (uint32_t)a) == (int)b, "window accept");
        } else if (strcmp(word, "window_state") == 0 && sscanf(line, "%*s %llu %llu", &a, &b) == 2) {
            CHECK(w.highest == a && w.seen == b, "window state");
        } else if (strcmp(word, "guard") == 0 && sscanf(line, "%*s %llu %llu", &a, &b) == 2) {
            lp_guard_init(&g, (uint8_t)a, (uint32_t)b);
        } else if (strcmp(word, "renew") == 0 && sscanf(line, "%*s %llu", &a) == 1) {
            lp_guard_renew(&g, (uint32_t)a);
        } else if (strcmp(word, "command") == 0 &&
                   sscanf(line, "%*s %llu %llu %llu %llu %llu", &a, &b, &c, &d, &e) == 5) {
            lp_envelope env = down(LP_UNLOCK, (uint32_t)a, (uint32_t)b);
            lp_verdict v = lp_guard_check_command(&g, &env, c);
            CHECK((unsigned long long)v.kind == d && (d == LP_EXECUTE || v.result == e), "command verdict");
        } else if (strcmp(word, "request") == 0 &&
                   sscanf(line, "%*s %llx %llu %llu %llu %llu", &a, &b, &c, &d, &e) == 5) {
            lp_envelope env = down((uint8_t)a, (uint32_t)b, (uint32_t)c);
            lp_verdict v = lp_guard_check_request(&g, &env);
            CHECK((unsigned long long)v.kind == d && (d == LP_EXECUTE || v.result == e), "request verdict");
        } else if (strcmp(word, "record") == 0 && sscanf(line, "%*s %llu %llu %llu", &a, &b, &c) == 3) {
            lp_guard_record(&g, a, (uint32_t)b, (uint8_t)c);
        } else if (strcmp(word, "recent") == 0) {
            lp_outcome out[LP_RECENT];
            uint8_t n = lp_guard_recent(&g, out), i;
            char expect[4096] = "", item[48];
            for (i = 0; i < n; i++) {
                sprintf(item, "%s%llu:%u", i ? "," : "", (unsigned long long)out[i].command_id, out[i].result);
                strcat(expect, item);
            }
            if (n == 0) {
                strcpy(expect, "-");
            }
            line[strcspn(line, "\n")] = '\0';
            CHECK(strcmp(line + 7, expect) == 0, "recent outcomes");
        } else {
            fprintf(stderr, "line %u not understood: %s", line_no, line);
            return 2;
        }
    }
    worked_example();
    if (steps == 0u) {
        fprintf(stderr, "nothing on standard input\n");
        return 2;
    }
    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("lp_guard: %u steps, %u checks passed\n", steps, checks);
    return 0;
}

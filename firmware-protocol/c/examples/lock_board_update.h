/* The example lock board's firmware updates (lock_board_update.c): what lock_board.c calls. */
#ifndef LOCK_BOARD_UPDATE_H
#define LOCK_BOARD_UPDATE_H

#include "locker_update.h"

/* Reads LOCK_BOARD_FLASH (a directory standing for the board's flash) and
 * LOCK_BOARD_VENDOR_KEY (the vendor's public key, hex): without both it takes no updates. */
void board_update_init(void);
/* The firmware the board runs (what its hello announces). */
const char *board_firmware(void);
/* The largest chunk it takes, for its hello (0: it takes no updates). */
uint16_t board_max_chunk(void);
/* Whether `type` is an update message. */
int board_update_message(uint8_t type);
/* The answer to an update message (answer->type 0: nothing). */
void board_update(const lp_envelope *env, lp_update_answer *answer);
/* After the answer to an install went out: reboot into the new image (1), else 0. */
int board_update_reboot(void);

#endif

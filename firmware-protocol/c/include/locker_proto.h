/*
 * locker_proto: the locker's side of the locker wire protocol (firmware-protocol/PROTOCOL.md),
 * in C99 for microcontrollers. No heap, no operating system calls, no global state: every
 * function works on the caller's buffers and structures.
 *
 * This header covers the wire itself:
 *   - CRC-16/MODBUS (PROTOCOL.md section 5.1);
 *   - serial frames: encoding, and a decoder fed one byte at a time that finds a valid frame
 *     after any noise (section 5.2);
 *   - the envelope: sealing (header, body, tag) and opening (parsing and checking the tag) of
 *     binary envelopes (section 4.3), and the tag of a JSON body for MQTT (section 4.4);
 *   - HMAC-SHA256 and the tag key derivation (section 3), with a bundled SHA-256. To use a
 *     hardware HMAC instead, build with -DLP_EXTERNAL_HMAC and provide lp_hmac_sha256().
 *
 * Byte order: every integer on the wire is big-endian except the frame's CRC (low byte first);
 * the library converts, so callers use plain integers.
 */
#ifndef LOCKER_PROTO_H
#define LOCKER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes (PROTOCOL.md sections 4 and 5). */
#define LP_KEY_LEN 32u           /* a device secret, or the tag key K derived from it */
#define LP_TAG_LEN 16u           /* first 16 bytes of the HMAC-SHA256 */
#define LP_MAX_DEVICE_ID 32u     /* device id: 1 to 32 of A-Z a-z 0-9 _ - */
#define LP_MAX_BINARY_BODY 1024u /* binary body (serial) */
#define LP_MAX_JSON_BODY 61440u  /* JSON body (MQTT) */
#define LP_HEADER_LEN(id_len) (15u + (id_len)) /* signed header before the body */
#define LP_MIN_ENVELOPE (LP_HEADER_LEN(1u) + LP_TAG_LEN)                                /* 32 */
#define LP_MAX_ENVELOPE (LP_HEADER_LEN(LP_MAX_DEVICE_ID) + LP_MAX_BINARY_BODY + LP_TAG_LEN) /* 1087 */
#define LP_FRAME_OVERHEAD 7u                           /* A5 5A, length, address ... CRC */
#define LP_MAX_FRAME (LP_MAX_ENVELOPE + LP_FRAME_OVERHEAD) /* 1094 */
#define LP_MIN_ADDRESS 1u
#define LP_MAX_ADDRESS 247u

/* Envelope fields (section 4.1). */
#define LP_ENVELOPE_VERSION 1u
#define LP_DOWN 1u   /* gateway -> locker */
#define LP_UP 2u     /* locker -> gateway */
#define LP_BINARY 1u /* serial */
#define LP_JSON 2u   /* MQTT */

/* Message types (section 2): downlinks have the high bit clear, uplinks set. */
enum lp_type {
    LP_UNLOCK = 0x01,
    LP_QUERY_STATE = 0x02,
    LP_CONFIGURE = 0x03,
    LP_PING = 0x04,
    LP_POLL = 0x05,
    LP_UPDATE_OFFER = 0x06, /* firmware updates: locker_update.h */
    LP_CHUNK = 0x07,
    LP_INSTALL = 0x08,
    LP_HELLO = 0x81,
    LP_HEARTBEAT = 0x82,
    LP_ACK = 0x83,
    LP_DOOR_EVENT = 0x84,
    LP_ALARM = 0x85,
    LP_STATE_REPORT = 0x86,
    LP_PONG = 0x87,
    LP_CHUNK_REQUEST = 0x88,
    LP_UPDATE_REPORT = 0x89
};

/* Whether `type` is a message type of the protocol. */
int lp_type_known(uint8_t type);

/* Results. LP_OK is 0; every other value says what was wrong. */
typedef enum {
    LP_OK = 0,
    LP_ERR_SPACE,       /* the output buffer is too small */
    LP_ERR_LENGTH,      /* a length outside what the protocol allows, or bytes missing */
    LP_ERR_VERSION,     /* an envelope version other than 1 */
    LP_ERR_DIRECTION,   /* a direction other than down (1) or up (2) */
    LP_ERR_ENCODING,    /* an encoding other than binary where a binary envelope is read */
    LP_ERR_DEVICE_ID,   /* a device id of the wrong length or characters */
    LP_ERR_TYPE,        /* an unknown message type */
    LP_ERR_BAD_TAG,     /* the tag does not verify: the message was not made with this key */
    LP_ERR_ADDRESS,     /* a bus address outside 1 to 247 */
    LP_ERR_RANGE        /* a body's field outside its range */
} lp_status;

/* A short English name of a status, for logs. */
const char *lp_status_name(lp_status status);

/* ---- HMAC-SHA256 and keys (section 3) ---- */

typedef struct {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes in block */
} lp_sha256;

void lp_sha256_init(lp_sha256 *ctx);
void lp_sha256_update(lp_sha256 *ctx, const uint8_t *data, size_t len);
void lp_sha256_final(lp_sha256 *ctx, uint8_t digest[32]);

/* HMAC-SHA256 of the concatenation of two messages (either may be empty): the library tags a
 * header and a body without copying them together. Replaceable with -DLP_EXTERNAL_HMAC. */
void lp_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                    const uint8_t *b, size_t b_len, uint8_t mac[32]);

/* The tag key K = HMAC-SHA256(secret, "locker-gateway/tag-key/v1"). A locker may keep K in flash
 * instead of the secret. */
void lp_derive_tag_key(const uint8_t secret[LP_KEY_LEN], uint8_t key[LP_KEY_LEN]);

/* Constant-time comparison of two tags: 1 when equal. */
int lp_tags_equal(const uint8_t a[LP_TAG_LEN], const uint8_t b[LP_TAG_LEN]);

/* ---- The envelope (section 4) ---- */

typedef struct {
    uint8_t direction; /* LP_DOWN or LP_UP */
    uint8_t encoding;  /* LP_BINARY or LP_JSON */
    uint8_t device_id_len;
    char device_id[LP_MAX_DEVICE_ID + 1]; /* NUL-terminated for convenience */
    uint32_t session;
    uint32_t counter;
    uint8_t type;
    const uint8_t *body; /* the body bytes exactly as tagged (JSON: the body string's bytes) */
    uint16_t body_len;
} lp_envelope;

/* Fills the header fields of `env` (the body is set by the caller); device_id must be a valid
 * id. Returns LP_ERR_DEVICE_ID or LP_OK. */
lp_status lp_envelope_init(lp_envelope *env, uint8_t direction, uint8_t encoding,
                           const char *device_id, uint32_t session, uint32_t counter,
                           uint8_t type);

/* The tag of `env` (either encoding) with key K. */
lp_status lp_envelope_tag(const lp_envelope *env, const uint8_t key[LP_KEY_LEN],
                          uint8_t tag[LP_TAG_LEN]);

/* Writes the binary envelope (signed bytes then tag) of `env` to out; *out_len its length. */
lp_status lp_envelope_seal(const lp_envelope *env, const uint8_t key[LP_KEY_LEN], uint8_t *out,
                           size_t out_cap, size_t *out_len);

/* Reads a binary envelope without checking its tag: the header, the body (pointing into `in`)
 * and the tag as sent. Use the result only to find the key, or to answer `bad_tag` with the
 * command id it names (section 2.1); never act on it. */
lp_status lp_envelope_parse(const uint8_t *in, size_t len, lp_envelope *env,
                            uint8_t tag[LP_TAG_LEN]);

/* Reads a binary envelope and checks its tag with key K: LP_OK only for a message made with K.
 * On LP_ERR_BAD_TAG `env` holds what was read (see lp_envelope_parse). */
lp_status lp_envelope_open(const uint8_t *in, size_t len, const uint8_t key[LP_KEY_LEN],
                           lp_envelope *env);

/* The tag as MQTT carries it: 32 lowercase hex digits and a NUL. */
void lp_tag_hex(const uint8_t tag[LP_TAG_LEN], char hex[2 * LP_TAG_LEN + 1]);

/* ---- JSON for MQTT (sections 2.1 and 4.4) ---- */

#define LP_MAX_JSON_PAYLOAD 131072u /* payloads over 128 KiB are refused unread */

/* The JSON name of a message type ("unlock", "door_event", ...), or NULL. */
const char *lp_type_name(uint8_t type);

/* Writes the MQTT payload of `env` (encoding LP_JSON; env->body is the JSON body text, tagged
 * as it stands): {"version":1,"direction":...,"body":"<the body as a JSON string>","tag":...}. */
lp_status lp_json_seal(const lp_envelope *env, const uint8_t key[LP_KEY_LEN], char *out,
                       size_t out_cap, size_t *out_len);

/* Reads an MQTT payload and checks its tag with key K: LP_OK only for a message made with K.
 * The body string is unescaped into `body` (body_cap bytes; the tag covers these bytes) and
 * env->body points to it. Fields may come in any order; unknown ones are ignored. On
 * LP_ERR_BAD_TAG `env` holds what was read: use it only to answer `bad_tag` (section 7.6). */
lp_status lp_json_open(const char *payload, size_t len, const uint8_t key[LP_KEY_LEN],
                       lp_envelope *env, char *body, size_t body_cap);

/* An uplink's JSON body from its binary body (written with lp_write_*), field for field in the
 * gateway's order: a firmware builds every body once, in binary, for both transports. */
lp_status lp_json_from_binary(uint8_t type, const uint8_t *body, size_t len, char *out,
                              size_t out_cap, size_t *out_len);

/* A downlink's binary body from its JSON body, for lp_read_unlock and the others (which check
 * the ranges): LP_ERR_LENGTH for a required field missing, LP_ERR_RANGE for a field that is not
 * an integer in its field's width (or an expiry of 0), both answered `malformed`. */
lp_status lp_json_to_binary(uint8_t type, const char *json, size_t len, uint8_t *out,
                            size_t out_cap, size_t *out_len);

/* The command id of a JSON command body, if it holds a valid one (to answer a refusal, such as
 * `malformed` for a body whose other fields are wrong): 1 when found. */
int lp_json_command_id(const char *json, size_t len, uint64_t *command_id);

/* ---- Bodies (section 2.1): what a locker reads and what it writes ---- */

#define LP_MAX_SAFE_INTEGER 9007199254740991ull /* 2^53 - 1: ids, uptimes, expiries */
#define LP_MAX_DOORS 512u
#define LP_MAX_TEXT 32u   /* firmware, serial number */
#define LP_MAX_RECENT 32u /* recent outcomes, door results */
#define LP_SIGNAL_NONE (-128) /* heartbeat: no radio signal reported */

/* Command results and refusal reasons (the ack's result byte). */
enum lp_result {
    LP_EXECUTED = 0,
    LP_NO_SUCH_DOOR = 1,
    LP_BUSY = 2,
    LP_EXPIRED = 3,
    LP_REFUSED_BAD_TAG = 4,
    LP_STALE_COUNTER = 5,
    LP_UNSUPPORTED = 6,
    LP_WRONG_SESSION = 7,
    LP_MALFORMED = 8
};

/* Door byte: bits 0-1 sensor, bit 2 locked, bits 3-4 item sensor (section 2.1). */
enum lp_sensor { LP_SENSOR_UNKNOWN = 0, LP_SENSOR_CLOSED = 1, LP_SENSOR_OPEN = 2 };
enum lp_item { LP_ITEM_NONE = 0, LP_ITEM_EMPTY = 1, LP_ITEM_OCCUPIED = 2 };
#define LP_DOOR_BYTE(sensor, locked, item) \
    ((uint8_t)(((sensor) & 3u) | ((locked) ? 4u : 0u) | (((item) & 3u) << 3)))

enum lp_motion { LP_OPENED = 1, LP_CLOSED = 2 };
enum lp_alarm_kind {
    LP_FORCED_OPEN = 1, LP_DOOR_AJAR = 2, LP_TAMPER = 3, LP_POWER_LOSS = 4, LP_JAMMED = 5
};
enum lp_door_outcome { LP_DOOR_OPENED = 1, LP_DOOR_ALREADY_OPEN = 2, LP_DOOR_NOT_OPENED = 3 };

/* Downlinks. A reader accepts bytes after the fields it knows (a newer gateway may add some). */
typedef struct {
    uint64_t command_id;    /* 1 .. 2^53 - 1 */
    uint16_t door;          /* 1 .. 512; the locker checks it against its own door count */
    uint64_t expires_at_ms; /* locker uptime after which it is refused as expired; 0: never */
} lp_unlock;

typedef struct {
    uint64_t command_id;
    uint16_t heartbeat_secs;  /* 5 .. 3600 */
    uint16_t open_window_ms;  /* 1000 .. 60000 */
    uint16_t pulse_ms;        /* 50 .. 5000 */
    uint16_t ajar_alarm_secs; /* 0 (off) or 10 .. 3600 */
    uint64_t expires_at_ms;
} lp_configure;

/* Each returns LP_OK, LP_ERR_LENGTH (the body is shorter than its fields) or LP_ERR_RANGE (a
 * field outside its range): both are answered `malformed` for a command (section 2.1). For an
 * `unlock` or `configure` too short to hold its command id, no ack can name it: answer nothing. */
lp_status lp_read_unlock(const uint8_t *body, size_t len, lp_unlock *out);
lp_status lp_read_configure(const uint8_t *body, size_t len, lp_configure *out);
lp_status lp_read_query_state(const uint8_t *body, size_t len, uint32_t *query_id);
lp_status lp_read_poll(const uint8_t *body, size_t len, uint32_t *ack_counter);
/* The command id of a command's body, if it holds one (to answer a refusal): 1 when found. */
int lp_read_command_id(const uint8_t *body, size_t len, uint64_t *command_id);

/* Uplinks. Each writes the body to out (out_cap bytes) and its length to *out_len; it returns
 * LP_ERR_RANGE for a field outside its range and LP_ERR_SPACE for a buffer too small. */
typedef struct {
    uint8_t protocol_version; /* 1 or 2 */
    const char *firmware;     /* 1 .. 32 printable ASCII */
    const char *serial_no;    /* 1 .. 32 printable ASCII */
    uint16_t door_count;      /* 1 .. 512 */
    uint32_t session;         /* never 0 */
    uint64_t uptime_ms;
    uint16_t max_chunk;       /* largest update chunk taken (16 .. 32768); 0: no updates */
} lp_hello;

typedef struct {
    uint64_t command_id;
    uint8_t result; /* enum lp_result */
} lp_outcome;

typedef struct {
    uint64_t command_id; /* an executed unlock's */
    uint8_t door;        /* enum lp_door_outcome */
} lp_door_result;

lp_status lp_write_hello(const lp_hello *m, uint8_t *out, size_t out_cap, size_t *out_len);
lp_status lp_write_heartbeat(uint64_t uptime_ms, int signal_dbm, const uint8_t *doors,
                             uint16_t door_count, uint8_t *out, size_t out_cap, size_t *out_len);
lp_status lp_write_ack(uint64_t command_id, uint8_t result, uint8_t *out, size_t out_cap,
                       size_t *out_len);
/* command_id 0: uncommanded. */
lp_status lp_write_door_event(uint16_t door, uint8_t motion, uint64_t command_id,
                              uint64_t uptime_ms, uint8_t *out, size_t out_cap, size_t *out_len);
/* door 0: the whole cabinet. */
lp_status lp_write_alarm(uint8_t kind, uint16_t door, uint64_t uptime_ms, uint8_t *out,
                         size_t out_cap, size_t *out_len);
/* recent: oldest first (at most 32); door_results (protocol version 2): oldest first, at most
 * 32; the oldest are left out when the whole list does not fit the 1,024-byte body. */
lp_status lp_write_state_report(uint32_t query_id, const uint8_t *doors, uint16_t door_count,
                                const lp_outcome *recent, uint8_t recent_count,
                                const lp_door_result *door_results, uint8_t door_result_count,
                                uint8_t *out, size_t out_cap, size_t *out_len);

/* ---- The locker's rules for downlinks (section 7.2) ---- */

/* The anti-replay window: the highest counter accepted and a map of the 63 below it. */
#define LP_WINDOW 64u
typedef struct {
    uint32_t highest;
    uint64_t seen; /* bit n: highest - n was accepted */
} lp_window;

/* 1 when `counter` is new (above the highest, or inside the window and not accepted before). */
int lp_window_check(const lp_window *w, uint32_t counter);
/* Accepts `counter` if it is new: 1 then, else 0 and nothing changes. */
int lp_window_accept(lp_window *w, uint32_t counter);

/* What the locker remembers of its last commands: kept across reconnects (a new session without
 * a reboot), forgotten at reboot. */
#define LP_RECENT 32u
typedef struct {
    uint64_t command_id;
    uint32_t counter;
    uint8_t result;
} lp_handled;

typedef struct {
    uint32_t session; /* the current session, announced in the hello */
    uint8_t version;  /* protocol version announced: 1 (last counter) or 2 (window) */
    lp_window window;
    lp_handled recent[LP_RECENT]; /* a ring, oldest at `first` */
    uint8_t first, count;
} lp_guard;

typedef enum {
    LP_EXECUTE, /* new: do it, then lp_guard_record its result (commands) */
    LP_REPEAT,  /* an exact repeat of a handled command: answer `result` again, do nothing */
    LP_REFUSE   /* a command: answer ack refused `result`; a request: ignore it (see below) */
} lp_verdict_kind;

typedef struct {
    lp_verdict_kind kind;
    uint8_t result; /* LP_REPEAT: the stored result; LP_REFUSE: the reason (enum lp_result) */
} lp_verdict;

/* A guard for a new session after a reboot (nothing remembered). */
void lp_guard_init(lp_guard *g, uint8_t version, uint32_t session);
/* A new session without a reboot (a reconnect): the counters start again, the recent outcomes
 * stay (they settle commands whose answer was lost with the old connection). */
void lp_guard_renew(lp_guard *g, uint32_t session);
/* Checks a command (`unlock`, `configure`) whose tag verified: another session is refused
 * `wrong_session`, a counter that is not new `stale_counter`, unless it is an exact repeat (same
 * command id and counter) of one still remembered. */
lp_verdict lp_guard_check_command(lp_guard *g, const lp_envelope *env, uint64_t command_id);
/* Checks a request (`poll`, `ping`, `query_state`) of the current session: LP_EXECUTE when new,
 * and for a `poll` repeating the highest counter accepted (its answer was lost); else LP_REFUSE,
 * which means: ignore it. A request naming another session is answered with a `hello` for the
 * current one (section 7.1): this returns LP_REFUSE / LP_WRONG_SESSION for it. */
lp_verdict lp_guard_check_request(lp_guard *g, const lp_envelope *env);
/* Remembers a command's outcome (the oldest is forgotten beyond LP_RECENT). */
void lp_guard_record(lp_guard *g, uint64_t command_id, uint32_t counter, uint8_t result);
/* The remembered outcomes, oldest first, for a state report; returns how many. */
uint8_t lp_guard_recent(const lp_guard *g, lp_outcome out[LP_RECENT]);

/* ---- A serial board's queue of door events and alarms (section 5.3) ---- */

#define LP_QUEUE 16u /* the protocol's minimum */
#define LP_MAX_QUEUED_BODY 19u /* a door_event's body; an alarm's is 11 */

typedef struct {
    uint8_t type; /* LP_DOOR_EVENT or LP_ALARM */
    uint8_t len;
    uint8_t body[LP_MAX_QUEUED_BODY];
} lp_queued;

typedef struct {
    lp_queued items[LP_QUEUE]; /* a ring, oldest at `first` */
    uint8_t first, count;
    uint8_t in_flight;        /* 1 while `flight` waits for a poll's ack_counter to reach it */
    lp_queued flight;         /* the queued uplink last sent */
    uint32_t flight_counter;  /* the counter it was last sent with */
} lp_board_queue;

void lp_queue_init(lp_board_queue *q);
/* A power cut: what was queued and in flight is gone. */
#define lp_queue_forget(q) lp_queue_init(q)
/* Keeps a door event or alarm (its body, written with lp_write_door_event / lp_write_alarm) for
 * the next polls. When full, the oldest door event makes room; a door event finding only alarms
 * is dropped, and an alarm finding only alarms drops the oldest. Returns 1 when it was kept. */
int lp_queue_push(lp_board_queue *q, uint8_t type, const uint8_t *body, uint8_t len);

typedef enum {
    LP_SEND_HEARTBEAT, /* nothing queued: a fresh heartbeat, with the next uplink counter */
    LP_SEND_QUEUED     /* *uplink, with *counter (the next counter, or the same as last time) */
} lp_poll_answer;

/* Answers a poll (its ack_counter), given the counter of the last uplink the board sent of any
 * kind (`last_sent`) and the next uplink counter (`next`): an uplink in flight that the poll
 * acknowledges is dropped; with none in flight the oldest queued one is taken; one still in
 * flight is sent again with the same counter if it was the last uplink sent, else with the next.
 * When the answer uses `next`, the caller moves its counter on. */
lp_poll_answer lp_queue_answer_poll(lp_board_queue *q, uint32_t ack_counter, uint32_t last_sent,
                                    uint32_t next, const lp_queued **uplink, uint32_t *counter);

/* ---- Serial frames (section 5) ---- */

/* CRC-16/MODBUS: polynomial 0xA001 (reflected 0x8005), initial 0xFFFF, no final XOR. */
uint16_t lp_crc16_modbus(const uint8_t *data, size_t len);

/* Writes the frame carrying `envelope` (LP_MIN_ENVELOPE to LP_MAX_ENVELOPE bytes) for bus
 * address `address`. */
lp_status lp_frame_encode(uint8_t address, const uint8_t *envelope, size_t len, uint8_t *out,
                          size_t out_cap, size_t *out_len);

/* A frame found by the decoder: `envelope` points into the decoder's buffer and stays valid
 * until the next call that feeds the decoder. */
typedef struct {
    uint8_t address;
    const uint8_t *envelope;
    size_t len;
} lp_frame;

/* The frame decoder: one maximum frame of buffer (section 5.2), counters for diagnostics. */
typedef struct {
    uint8_t buf[LP_MAX_FRAME];
    size_t start;    /* first byte not yet dropped */
    size_t len;      /* bytes held, from buf[0] */
    size_t consumed; /* bytes of the frame last returned, dropped at the next feed */
    uint32_t frames, skipped, bad_length, bad_crc, bad_address;
} lp_decoder;

void lp_decoder_init(lp_decoder *dec);

/* Feeds one received byte. Returns 1 and fills *frame when a whole valid frame has arrived,
 * else 0. On a bad length, CRC or address it drops one byte and looks for the next A5 5A, so a
 * valid frame after noise is always found. A board still checks that the address is its own. */
int lp_decoder_feed(lp_decoder *dec, uint8_t byte, lp_frame *frame);

/* The line was silent for longer than the inter-frame gap (section 5.2): the unfinished frame at
 * the start is given up one byte at a time, and a whole valid frame still held behind it (after
 * a corrupted length, say) is returned: 1 and *frame filled, else 0 with nothing held. */
int lp_decoder_gap(lp_decoder *dec, lp_frame *frame);

#ifdef __cplusplus
}
#endif

#endif /* LOCKER_PROTO_H */

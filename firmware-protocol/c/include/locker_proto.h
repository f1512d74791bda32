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
    LP_HELLO = 0x81,
    LP_HEARTBEAT = 0x82,
    LP_ACK = 0x83,
    LP_DOOR_EVENT = 0x84,
    LP_ALARM = 0x85,
    LP_STATE_REPORT = 0x86,
    LP_PONG = 0x87
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
    LP_ERR_ADDRESS      /* a bus address outside 1 to 247 */
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

/* The line was silent for longer than the inter-frame gap: a half-received frame is dropped. */
void lp_decoder_gap(lp_decoder *dec);

#ifdef __cplusplus
}
#endif

#endif /* LOCKER_PROTO_H */

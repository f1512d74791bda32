#!/usr/bin/env python3
"""Checks vectors.json with a second implementation of the tag and the CRC, written from
PROTOCOL.md and not from the Rust code (standard library only). Run: python3 check_vectors.py"""
import hashlib
import hmac
import json
import pathlib
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def tag(key: bytes, signed: bytes) -> str:
    return hmac.new(key, signed, hashlib.sha256).digest()[:16].hex()


def header(version, direction, encoding, device_id, session, counter, type_code, body_len):
    dev = device_id.encode("ascii")
    return (bytes([version, direction, encoding, len(dev)]) + dev
            + struct.pack(">IIBH", session, counter, type_code, body_len))


def frames(data: bytes):
    """Every whole frame with a good CRC in `data` (a receiver's scan: drop one byte on anything
    wrong), as (address, envelope)."""
    found, i = [], 0
    while i + 7 <= len(data):
        if data[i:i + 2] != b"\xa5\x5a":
            i += 1
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        end = i + 5 + length + 2
        if not 32 <= length <= 1087 or end > len(data):
            i += 1
            continue
        (crc,) = struct.unpack("<H", data[end - 2:end])
        if crc16_modbus(data[i + 2:end - 2]) != crc or not 1 <= data[i + 4] <= 247:
            i += 1
            continue
        found.append((data[i + 4], data[i + 5:end - 2]))
        i = end
    return found


def check_exchanges(data, key):
    """Each step's frames: a board step is one frame whose tag verifies; a gateway step's frame
    for address 7 verifies unless the step says the tag is wrong; an ignored frame with a bad
    CRC or for another address is not found for address 7."""
    steps = 0
    for ex in data["exchanges"]:
        for i, step in enumerate(ex["steps"]):
            where = f"{ex['name']} step {i + 1}"
            steps += 1
            if step["expect"] == "power_cut":
                assert step["bytes"] == "", where
                continue
            mine = [env for (address, env) in frames(bytes.fromhex(step["bytes"])) if address == 7]
            if step["from"] == "board":
                assert len(mine) == 1, f"{where}: one frame"
            if not mine:
                assert step["expect"] == "ignore", f"{where}: no frame for the board"
                continue
            envelope = mine[0]
            signed, sent = envelope[:-16], envelope[-16:].hex()
            good = tag(key, signed) == sent
            assert good == (step["expect"] != "refuse:bad_tag" and "another key" not in step["note"]), \
                f"{where}: tag"
    return steps


# Ed25519 verification as in RFC 8032 section 6 (the reference code, verification only).
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(a, b):
    A, B = (a[1] - a[0]) * (b[1] - b[0]) % P, (a[1] + a[0]) * (b[1] + b[0]) % P
    C, Dd = 2 * a[3] * b[3] * D % P, 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def point_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = point_add(q, p)
        p, s = point_add(p, p), s >> 1
    return q


def point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def point_decompress(s: bytes):
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


G_Y = 4 * pow(5, P - 2, P) % P
G = point_decompress(G_Y.to_bytes(32, "little"))


def ed25519_verify(public: bytes, msg: bytes, signature: bytes) -> bool:
    a, r = point_decompress(public), point_decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + msg).digest(), "little") % L
    return point_equal(point_mul(8 * s, G), point_add(point_mul(8, r), point_mul(8 * h, a)))


def check_update(data):
    """The update section: the manifest from its fields (PROTOCOL.md section 11), the vendor's
    signature, each chunk's CRC-32, and the offer's and chunks' bodies field by field."""
    u = data["update"]
    image = bytes.fromhex(u["image"])
    digest = hashlib.sha256(image).digest()
    assert digest.hex() == u["sha256"], "update: image sha256"
    version = u["version"].encode("ascii")
    manifest = b"LKFW\x01" + struct.pack(">I", len(image)) + digest + version
    assert manifest.hex() == u["manifest"], "update: manifest"
    public, signature = bytes.fromhex(u["vendor_public_key"]), bytes.fromhex(u["signature"])
    assert ed25519_verify(public, manifest, signature), "update: signature"
    assert not ed25519_verify(public, manifest[:-1] + b"9", signature), "update: a changed version"
    size = u["chunk_size"]
    chunks = [image[i:i + size] for i in range(0, len(image), size)]
    assert [f"{zlib.crc32(c):08x}" for c in chunks] == u["chunk_crc32"], "update: chunk crcs"
    by_name = {v["name"]: v for v in data["vectors"]}
    offer = bytes.fromhex(by_name["update_offer"]["body_binary"])
    (update_id,) = struct.unpack(">I", offer[:4])
    n = offer[4]
    assert offer[5:5 + n] == version, "update_offer: version"
    rest = offer[5 + n:]
    assert struct.unpack(">I", rest[:4])[0] == len(image), "update_offer: size"
    assert rest[4:36] == digest and rest[36:100] == signature, "update_offer: hash, signature"
    assert struct.unpack(">H", rest[100:102])[0] == size, "update_offer: chunk size"
    chunk = bytes.fromhex(by_name["chunk"]["body_binary"])
    cid, index, crc, length = struct.unpack(">IIIH", chunk[:14])
    assert cid == update_id and chunk[14:14 + length] == chunks[index], "chunk: data"
    assert crc == zlib.crc32(chunks[index]), "chunk: crc"
    return len(chunks)


def main():
    data = json.loads((HERE / "vectors.json").read_text())
    secret = bytes.fromhex(data["secret"])
    key = hmac.new(secret, b"locker-gateway/tag-key/v1", hashlib.sha256).digest()
    assert key.hex() == data["tag_key"], "tag key derivation"
    assert hashlib.sha256(secret).hexdigest() == data["password_sha256"], "password digest"
    assert f"{crc16_modbus(b'123456789'):04x}" == data["crc16_of_123456789"], "crc check value"
    for v in data["vectors"]:
        name = v["name"]
        direction = {"down": 1, "up": 2}[v["direction"]]
        code = int(v["type_code"], 16)
        body = bytes.fromhex(v["body_binary"])
        signed = header(1, direction, 1, v["device_id"], v["session"], v["counter"], code, len(body)) + body
        assert signed.hex() == v["signed_binary"], f"{name}: signed bytes"
        assert tag(key, signed) == v["tag_binary"], f"{name}: binary tag"
        envelope = signed + bytes.fromhex(v["tag_binary"])
        inner = struct.pack(">HB", len(envelope), v["bus_address"]) + envelope
        crc = crc16_modbus(inner)
        frame = b"\xa5\x5a" + inner + struct.pack("<H", crc)
        assert frame.hex() == v["frame"], f"{name}: frame"
        payload = json.loads(v["mqtt_payload"])
        assert payload["body"] == v["body_json"], f"{name}: payload body"
        json_body = payload["body"].encode("utf-8")
        signed_json = header(1, direction, 2, payload["device_id"], payload["session"],
                             payload["counter"], code, len(json_body)) + json_body
        assert tag(key, signed_json) == payload["tag"] == v["tag_json"], f"{name}: json tag"
        assert v["mqtt_topic"] == f"lockers/{v['device_id']}/{v['direction']}", f"{name}: topic"
    steps = check_exchanges(data, key)
    chunks = check_update(data)
    print(f"check_vectors.py: {len(data['vectors'])} vectors, {len(data['exchanges'])} exchanges "
          f"({steps} steps) and a signed update ({chunks} chunks) agree with an independent "
          "implementation")


if __name__ == "__main__":
    main()

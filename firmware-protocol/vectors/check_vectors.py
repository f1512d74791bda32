#!/usr/bin/env python3
"""Checks vectors.json with a second implementation of the tag and the CRC, written from
PROTOCOL.md and not from the Rust code (standard library only). Run: python3 check_vectors.py"""
import hashlib
import hmac
import json
import pathlib
import struct

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
    print(f"check_vectors.py: {len(data['vectors'])} vectors and {len(data['exchanges'])} exchanges "
          f"({steps} steps) agree with an independent implementation")


if __name__ == "__main__":
    main()

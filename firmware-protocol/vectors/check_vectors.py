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
    print(f"check_vectors.py: {len(data['vectors'])} vectors agree with an independent implementation")


if __name__ == "__main__":
    main()

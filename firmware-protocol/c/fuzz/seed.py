#!/usr/bin/env python3
"""Seeds corpus/ with every vector's frame and binary envelope (vectors/vectors.json), a frame
after noise, two frames back to back and a frame cut by a gap marker (FE FD)."""
import json, os
here = os.path.dirname(os.path.abspath(__file__))
vectors = json.load(open(os.path.join(here, "../../vectors/vectors.json")))["vectors"]
corpus = os.path.join(here, "corpus")
os.makedirs(corpus, exist_ok=True)
def put(name, data):
    with open(os.path.join(corpus, name), "wb") as f:
        f.write(data)
for v in vectors:
    frame = bytes.fromhex(v["frame"])
    put("frame-" + v["name"], frame)
    put("envelope-" + v["name"], bytes.fromhex(v["envelope_binary"]))
    put("noise-" + v["name"], b"\x00\xa5\x5a\xff\xff\x13" + frame)
    put("gap-" + v["name"], frame[:9] + b"\xfe\xfd" + frame)
    put("mqtt-" + v["name"], v["mqtt_payload"].encode())
    put("json-" + v["name"], v["body_json"].encode())
put("two-frames", bytes.fromhex(vectors[0]["frame"]) + bytes.fromhex(vectors[-1]["frame"]))

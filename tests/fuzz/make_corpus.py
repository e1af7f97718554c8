#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into corpus/<harness>/.

Small valid examples (and a few near misses). The protobuf messages are
encoded by hand (no python protobuf needed). Run from anywhere:
    python3 tests/fuzz/make_corpus.py
"""
import gzip
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint((num << 3) | 2) + varint(len(data)) + data


def tensor(name, dtype, shape, data):
    packed = b"".join(varint(d) for d in shape)
    return (field_bytes(1, name) + field_varint(2, dtype) + field_bytes(3, packed) +
            field_bytes(4, data))


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def predict_request(model, inputs, outputs=(), version=0):
    body = field_bytes(1, model)
    if version:
        body += field_varint(2, version)
    for t in inputs:
        body += field_bytes(3, t)
    for o in outputs:
        body += field_bytes(4, o)
    return body + field_bytes(5, "req-1")


def header(model, start_offset=0, outputs=()):
    body = field_bytes(1, model) + field_bytes(4, "job")
    for o in outputs:
        body += field_bytes(3, o)
    if start_offset:
        body += field_varint(5, start_offset)
    return field_bytes(1, body)


def chunk(sequence, inputs):
    body = field_varint(1, sequence) if sequence else b""
    for t in inputs:
        body += field_bytes(2, t)
    return field_bytes(2, body)


def framed(messages):
    return b"".join(struct.pack("<H", len(m)) + m for m in messages)


def npy(descr, shape, data, version=1):
    shape_text = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    size_bytes = 2 if version == 1 else 4
    total = 6 + 2 + size_bytes + len(text) + 1
    pad = (64 - total % 64) % 64
    text = text + " " * pad + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode() + data


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    x16 = tensor("x", 1, [2, 16], f32([0.5] * 32))
    write("fuzz_predict_request", "mlp", predict_request("mlp", [x16], ["logits"]))
    write("fuzz_predict_request", "mlp_all_outputs", predict_request("mlp", [x16], version=3))
    write("fuzz_predict_request", "pair", predict_request(
        "pair", [tensor("a", 1, [1, 3], f32([1, 2, 3])), tensor("b", 1, [1, 3], f32([4, 5, 6]))]))
    write("fuzz_predict_request", "mixed", predict_request("m", [
        tensor("ids", 5, [1, 2, 2], struct.pack("<4q", 1, 2, 3, 4)),
        tensor("mask", 10, [1, 1, 3], b"\x01\x00\x01"),
        tensor("h", 3, [1], b"\x00\x3c")], ["y"]))
    write("fuzz_predict_request", "bad_length", predict_request("mlp", [tensor("x", 1, [2, 16], f32([1] * 31))]))

    write("fuzz_model_config", "mlp.pbtxt", """input  { name: "x" dtype: FP32 dims: [16] forward_arg: 0 }
output { name: "logits" dtype: FP32 dims: [4] tuple_index: 0 }
output { name: "probs"  dtype: FP32 dims: [4] tuple_index: 1 }
max_batch_size: 64
max_queue_delay_microseconds: 0
max_queue_size: 1024
instance_count: 2
device: "cpu"
intra_op_threads: 1
optimize_for_inference: true
warmup_batch_sizes: [1, 8, 64]
version_policy { latest: 1 }
""")
    write("fuzz_model_config", "pair.pbtxt", """name: "m"
input { name: "a" dtype: FP32 dims: [-1] forward_arg: 1 }
input { name: "b" dtype: FP32 dims: [-1] forward_arg: 0 }
output { name: "sum" dtype: FP32 dims: [-1] dict_key: "sum" }
output { name: "diff" dtype: FP32 dims: [-1] dict_key: "diff" }
version_policy { specific { versions: [1, 3] } }
""")
    write("fuzz_model_config", "single.pbtxt", """input { name: "x" dtype: INT64 dims: [2, -1] }
output { name: "y" dtype: BOOL dims: [1] }
version_policy { all: true }
""")

    write("fuzz_model_config", "triton.pbtxt", """name: "m"
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, -1 ] } ]
output [ { name: "scores" data_type: TYPE_FP16 dims: [ 10 ] label_filename: "l.txt" },
         { name: "ids" data_type: TYPE_INT64 dims: [ 10 ] } ]
dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 100 }
instance_group [ { count: 2 kind: KIND_CPU rate_limiter { resources [ { name: "R" count: 1 } ] } } ]
version_policy: { latest: { num_versions: 2 } }
parameters: { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "1" } }
model_warmup [ { name: "w" batch_size: 1 inputs { key: "INPUT__0" value: { zero_data: true } } } ]
""")
    write("fuzz_model_config", "unbatched_reshape.pbtxt", """platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1, 4 ] reshape: { shape: [ -1, 2, 2 ] } } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
""")
    write("fuzz_model_config", "own_unbatched.pbtxt", """input { name: "x" dtype: FP32 dims: [3, -1] reshape { shape: [-1] } }
output { name: "y" dtype: FP32 dims: [4] reshape { shape: [2, 2] } }
no_batch_dimension: true
""")
    write("fuzz_model_config", "warmup_samples.pbtxt", """input { name: "x" dtype: FP32 dims: [-1] forward_arg: 0 }
input { name: "ids" dtype: INT64 dims: [2] forward_arg: 1 }
output { name: "y" dtype: FP32 dims: [1] }
max_batch_size: 8
warmup { name: "w" batch_size: 4 count: 2 inputs { key: "x" value { dims: [5] input_data_file: "x.bin" } }
         inputs { key: "ids" value { random_data: true } } }
""")

    body = b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
    deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
    raw_deflate = deflater.compress(body) + deflater.flush()
    gzipper = zlib.compressobj(1, zlib.DEFLATED, 31)
    gz = gzipper.compress(body) + gzipper.flush()
    # First byte: coding (% 3: identity, gzip, deflate) and limit; then the body.
    write("fuzz_http_body", "gzip", bytes([1 + 3 * 8]) + gz)
    write("fuzz_http_body", "zlib", bytes([2 + 3 * 8]) + zlib.compress(body, 1))
    write("fuzz_http_body", "raw_deflate", bytes([2]) + raw_deflate)
    write("fuzz_http_body", "bomb", bytes([1]) + gzip.compress(bytes(65536), 1))
    write("fuzz_http_body", "accept", b"\x00gzip;q=0.5, deflate, *;q=0")

    write("fuzz_npy", "f32_2d.npy", npy("<f4", [3, 2], f32([1, 2, 3, 4, 5, 6])))
    write("fuzz_npy", "f32_3d_v2.npy", npy("<f4", [1, 2, 3], f32(range(6)), version=2))
    write("fuzz_npy", "i8_1d.npy", npy("|i1", [4], b"\x01\x02\x03\x04"))
    write("fuzz_npy", "torn.npy", npy("<f4", [3, 2], f32([1, 2, 3, 4, 5])))

    write("fuzz_csv", "floats.csv", "a,b,c\n1,2,3\n4.5,-6,7e3\n\n8,9,10\n")
    write("fuzz_csv", "ints.csv", "x\n1\n2\n3\n")
    write("fuzz_csv", "ragged.csv", "a,b\n1,2\n3\n")

    x = tensor("x", 1, [2, 4], f32(range(8)))
    ids = tensor("ids", 5, [2, 1], struct.pack("<2q", 7, 8))
    write("fuzz_batch_framing", "job", framed([header("mlp", 0, ["y"]), chunk(0, [x, ids]),
                                                chunk(1, [x, ids])]))
    write("fuzz_batch_framing", "resumed", framed([header("mlp", 1000), chunk(0, [x, ids])]))
    write("fuzz_batch_framing", "near_max_offset", framed([header("mlp", (1 << 62) - 2), chunk(0, [x, ids]),
                                                           chunk(1, [x, ids])]))
    write("fuzz_batch_framing", "bad_sequence", framed([header("mlp"), chunk(1, [x])]))


if __name__ == "__main__":
    main()

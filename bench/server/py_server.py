#!/usr/bin/python3
"""py_server.py - the Python baseline: a grpcio server with remotemedia's ExecutePipeline
contract for chains of PassThrough and Gain (numpy) nodes, so bench/wire_bench.py can compare
calls/s. Prints {"port": N} on stderr once it listens. Usage (PYTHONPATH=<build>/python_gen):
py_server.py [host:port] [workers]"""
import json
import sys
from concurrent import futures

import grpc
import numpy as np

from remotemedia.v1 import data_pb2, pipeline_service_pb2 as ps, pipeline_service_pb2_grpc as psg

DTYPES = {data_pb2.AUDIO_FORMAT_F32: np.float32, data_pb2.AUDIO_FORMAT_I16: np.int16,
          data_pb2.AUDIO_FORMAT_I32: np.int32, data_pb2.AUDIO_FORMAT_F64: np.float64}


def gain(buf, params):
    if buf.WhichOneof("kind") != "audio":
        raise ValueError("Gain takes audio")
    dtype = DTYPES[buf.audio.format]
    x = np.frombuffer(buf.audio.samples, dtype=dtype)
    factor = 10.0 ** (float(params.get("db", 0.0)) / 20.0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        y = np.clip(np.rint(x.astype(np.float64) * factor), info.min, info.max).astype(dtype)
    else:
        y = (x * factor).astype(dtype)
    out = data_pb2.DataBuffer()
    out.audio.CopyFrom(buf.audio)
    out.audio.samples = y.tobytes()
    return out


NODES = {"PassThrough": lambda buf, params: buf, "Gain": gain}


class Service(psg.PipelineServiceServicer):
    def ExecutePipeline(self, request, context):
        m = request.manifest
        ids = [n.id for n in m.nodes]
        nxt = {getattr(c, "from"): c.to for c in m.connections}
        incoming = {c.to for c in m.connections}
        heads = [i for i in ids if i not in incoming]
        types = {n.id: n for n in m.nodes}
        resp = ps.ExecuteResponse(pipeline_name=m.name)
        for head in heads:  # chains only: enough for the benchmark's pipelines
            if head not in request.inputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no input for node '{head}'")
            buf, node = request.inputs[head], head
            while True:
                n = types[node]
                fn = NODES.get(n.node_type)
                if fn is None:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"unknown node type '{n.node_type}'")
                buf = fn(buf, json.loads(n.params) if n.params else {})
                resp.node_results.add(node_id=node, state=ps.NodeResult.STATE_OK,
                                      invocations=1, items_out=1)
                if node not in nxt:
                    break
                node = nxt[node]
            out = resp.outputs[node]
            out.node_id = node
            out.port = "out"
            out.items.append(buf)
        return resp


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    psg.add_PipelineServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port(addr)
    server.start()
    print(json.dumps({"port": port}), file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

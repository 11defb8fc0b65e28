"""pipeline.py - Pipeline: a DAG of nodes built in Python or loaded from a manifest JSON,
run on a remote server; and ExecuteResult, the decoded answer.

    pipeline = Pipeline(enable_metrics=True)          # $RM_SERVER, else localhost:50051
    pipeline.add_node(Gain(db=-6)).add_node(AudioResample(rate=16000))  # a chain
    out = await pipeline.run(samples, sample_rate=48000)                # AudioBuffer
    pipeline.get_metrics()["node_metrics"]

The manifest JSON form is the one the server's tools read (lib/manifest.c):
{"name", "nodes": [{"id", "node_type", "params": {}}],
 "connections": [{"from", "to", "from_port"?, "to_port"?}]}.
"""
import asyncio
import collections.abc
import functools
import json
import math
import numbers
import os
import re
import weakref
from typing import (Any, AsyncIterator, Dict, Iterable, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

import grpc
import numpy as np

from . import _proto
from .client import Client, client_for
from .config import RemoteConfig
from .data import AudioBuffer, decode_outputs
from .errors import Internal, RemoteMediaError
from .nodes import Node
from .schema import NodeTypeSchema
from .stream import (FLUSH, Chunks, StreamRate, StreamResult, StreamSession, init_request,
                     iterate, sync_requests)

#: What a pipeline may be given as its server: a RemoteConfig, an address string, a Client
#: (shares its channels) or None (RemoteConfig(): $RM_SERVER, else localhost:50051).
Remote = Union[RemoteConfig, str, Client, None]
#: A node or its id, where connections are made.
NodeRef = Union[Node, str]
#: output_nodes=: a node or its id, or a list of them; None (or empty): every sink.
NodeRefs = Union[NodeRef, Sequence[NodeRef], None]
#: The seed's metrics dict (see METRICS_KEYS).
Metrics = Dict[str, Any]

__all__ = ["Pipeline", "Connection", "ExecuteResult", "METRICS_KEYS", "NODE_METRICS_KEYS"]

#: The seed's metrics keys, in the seed's order (PipelineMetrics / NodeMetrics fields).
METRICS_KEYS = ("pipeline_id", "total_executions", "total_duration_us", "total_duration_ms",
                "peak_memory_bytes", "peak_memory_mb", "metrics_overhead_us", "node_metrics")
NODE_METRICS_KEYS = ("node_id", "execution_count", "success_count", "error_count",
                     "success_rate", "total_duration_us", "avg_duration_us", "min_duration_us",
                     "max_duration_us")

_TOP_KEYS = ("name", "nodes", "connections")
_NODE_KEYS = ("id", "node_type", "params")
_CONN_KEYS = ("from", "to", "from_port", "to_port")
_STATES = {1: "ok", 2: "failed", 3: "skipped"}
#: limits= keys, each with its largest value (the width of its ExecutionLimits field).
_LIMITS = {"max_nodes": 2**32 - 1, "max_audio_samples": 2**64 - 1,
           "max_input_bytes": 2**64 - 1, "max_execution_ms": 2**32 - 1,
           "max_memory_bytes": 2**64 - 1}


class Connection(NamedTuple):
    """An edge; empty ports mean the node's first (primary) port."""
    source: str
    target: str
    from_port: str = ""
    to_port: str = ""

    def to_dict(self) -> Dict[str, str]:
        d = {"from": self.source, "to": self.target}
        if self.from_port:
            d["from_port"] = self.from_port
        if self.to_port:
            d["to_port"] = self.to_port
        return d


def _finite(d: Dict[str, Any], where: str) -> Dict[str, Any]:
    """d, or Internal naming the first number in it that is not finite (as the C client)."""
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise Internal("the server's response: metrics%s: %s is %s (metrics are finite)"
                           % (where, k, v), grpc.StatusCode.INTERNAL, from_server=False)
    return d


def metrics_to_dict(m: Any) -> Metrics:
    """A PipelineMetrics message as the seed's JSON dict (same keys, same order). A number
    that is not finite (NaN, inf) raises remotemedia.Internal: a server bug."""
    d = _finite({k: getattr(m, k) for k in METRICS_KEYS[:-1]}, "")
    d["node_metrics"] = [_finite({k: getattr(n, k) for k in NODE_METRICS_KEYS},
                                 " node %r" % n.node_id) for n in m.node_metrics]
    return d


class ExecuteResult:
    """The decoded ExecuteResponse.

    Attributes:
        outputs: {key: [values]} - key is the node id for a node's primary port and
            "node_id.port" for another port; values are AudioBuffer, numpy arrays
            (tensors), JSON values, str or Binary, in emission order.
        node_results: [{"node_id", "state" ("ok"|"failed"|"skipped"), "invocations",
            "items_out"}] in execution order.
        metrics: the seed-form metrics dict, or None when metrics were not requested.
        pipeline_name: the name the server ran.
        response: the raw pipeline_service_pb2.ExecuteResponse.
    """

    def __init__(self, response: Any) -> None:
        self.response = response
        self.outputs: Dict[str, List[Any]] = decode_outputs(response.outputs)
        self.node_results: List[Dict[str, Any]] = [{"node_id": r.node_id, "state": _STATES.get(r.state, "unspecified"),
                              "invocations": r.invocations, "items_out": r.items_out}
                             for r in response.node_results]
        self.metrics: Optional[Metrics] = metrics_to_dict(response.metrics) if response.HasField("metrics") else None
        self.pipeline_name: str = response.pipeline_name

    def _key(self, key: Optional[str]) -> str:
        if key is not None:
            return key
        if len(self.outputs) != 1:
            raise ValueError("the pipeline returned %d outputs (%s): name one"
                             % (len(self.outputs), ", ".join(self.outputs)))
        return next(iter(self.outputs))

    def output(self, key: Optional[str] = None) -> Any:
        """The single item of output `key` (default: the only output). Raises KeyError /
        ValueError when that is not exactly one item."""
        key = self._key(key)
        items = self.outputs[key]
        if len(items) != 1:
            raise ValueError("output %r holds %d items; use .outputs[%r]" % (key, len(items), key))
        return items[0]

    def audio(self, key: Optional[str] = None) -> AudioBuffer:
        """Output `key` (default: the only output) as one AudioBuffer: its audio items
        joined in order. A node may emit its audio in several items (a resampler's flushed
        tail, a chunker's chunks); this is the whole signal. Raises ValueError when the
        items are not audio of one rate, channel count and format."""
        key = self._key(key)
        joined = _join_audio(self.outputs[key])
        if joined is None:
            raise ValueError("output %r is not audio of one rate, channel count and format" % key)
        return joined

    @functools.cached_property
    def value(self) -> Any:
        """What Pipeline.run returns. Per output: audio items (all of one rate, channel
        count and format) joined into one AudioBuffer; otherwise the single item, or the
        list of items when there are several. With one output, that value; with several,
        {key: value}. Use .outputs for the items exactly as emitted (e.g. chunks)."""
        def one(items: List[Any]) -> Any:
            joined = _join_audio(items)
            if joined is not None:
                return joined
            return items[0] if len(items) == 1 else items
        if len(self.outputs) == 1:
            return one(next(iter(self.outputs.values())))
        return {k: one(v) for k, v in self.outputs.items()}

    def __repr__(self) -> str:
        return "ExecuteResult(outputs=%s, metrics=%s)" % (
            {k: len(v) for k, v in self.outputs.items()}, "yes" if self.metrics else "no")


def _join_audio(items: List[Any]) -> Optional[AudioBuffer]:
    """One AudioBuffer from audio items of one rate/channels/format, else None."""
    if not items or not all(isinstance(i, AudioBuffer) for i in items):
        return None
    first = items[0]
    if len(items) == 1:
        return first
    if any((i.sample_rate, i.channels, i.dtype) != (first.sample_rate, first.channels, first.dtype)
           for i in items):
        return None
    return AudioBuffer(np.concatenate([i.samples for i in items]), first.sample_rate)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower() or "node"


class Pipeline:
    """A pipeline of nodes, run remotely.

    Args:
        name: the manifest's name (shows in the server's logs).
        remote: RemoteConfig, address string, or a Client to share its channel; None (the
            default) is RemoteConfig(): the server $RM_SERVER names, else localhost:50051.
            Nothing connects before the first call.
        enable_metrics: ask the server for per-run metrics (get_metrics()).
    """

    def __init__(self, name: str = "pipeline", remote: Remote = None,
                 enable_metrics: bool = False) -> None:
        self.name = name
        self.enable_metrics = bool(enable_metrics)
        self._nodes: Dict[str, Node] = {}
        self._connections: List[Connection] = []
        self._last: Optional[str] = None
        self._client, self._owns_client = client_for(remote)
        self._metrics: Optional[Metrics] = None
        #: The ExecuteResult of the most recent successful run.
        self.last_result: Optional[ExecuteResult] = None

    # -- building --------------------------------------------------------------------------
    def add_node(self, node: Union[Node, str], *, chain: bool = True,
                 after: Union[NodeRef, Sequence[NodeRef], None] = None) -> "Pipeline":
        """Adds node (a Node, or a type name) and returns the pipeline, so calls chain.

        By default the node is connected from the node added before it. after= (a node or
        id, or a list of them) connects from those instead; chain=False adds it
        unconnected (use connect()). A node belongs to one pipeline: adding it to a second
        raises ValueError (add copy.deepcopy(node) instead). When add_node raises, neither
        the pipeline nor the node has changed (the node gets its made-up id only once it
        is in)."""
        if isinstance(node, str):
            node = Node(node)
        if not isinstance(node, Node):
            raise TypeError("add_node takes a Node (e.g. remotemedia.nodes.Gain(db=-6)), not %s"
                            % type(node).__name__)
        self._check_free(node)
        if node.id is not None and node.id in self._nodes:
            raise ValueError("duplicate node id %r" % node.id)
        sources = self._sources(chain, after)
        node.id = node.id if node.id is not None else self._fresh_id(node.node_type or "node")
        node._pipeline = weakref.ref(self)
        self._nodes[node.id] = node
        for s in sources:
            self.connect(s, node)
        self._last = node.id
        return self

    def _check_free(self, node: Node) -> None:
        """ValueError when node is in this pipeline, or in another one still alive: two
        pipelines sharing a node would share its id and params, and a change made for one
        (an id assigned, a param edited) would silently change the other."""
        if any(n is node for n in self._nodes.values()):
            raise ValueError("node %s is already in the pipeline" % node.id)
        owner = node._pipeline() if node._pipeline is not None else None
        if owner is not None and any(n is node for n in owner._nodes.values()):
            raise ValueError("node %r is already in pipeline %r: a node belongs to one pipeline; "
                             "add a copy (copy.deepcopy(node))" % (node.id, owner.name))

    def _sources(self, chain: bool, after: Union[NodeRef, Sequence[NodeRef], None]) -> List[str]:
        """The ids add_node connects the new node from, checked before anything changes."""
        if after is not None:
            refs = list(after) if isinstance(after, (list, tuple)) else [after]
            return [self._id_of(s) for s in refs]
        if chain and self._last is not None:
            return [self._last]
        return []

    def connect(self, source: NodeRef, target: NodeRef, from_port: Optional[str] = None,
                to_port: Optional[str] = None) -> "Pipeline":
        """Adds the edge source -> target (nodes or ids, already in the pipeline); ports
        default to each node's primary port. Adding an existing edge again changes nothing.
        A self-loop is a ValueError (the server would only see a graph without a source).
        Returns the pipeline."""
        c = Connection(self._id_of(source), self._id_of(target), from_port or "", to_port or "")
        if c.source == c.target:
            raise ValueError("connect: %r -> %r is a self-loop; a pipeline is acyclic"
                             % (c.source, c.target))
        if c not in self._connections:
            self._connections.append(c)
        return self

    def disconnect(self, source: NodeRef, target: NodeRef, from_port: Optional[str] = None,
                   to_port: Optional[str] = None) -> "Pipeline":
        """Removes the edge source -> target. Returns the pipeline."""
        c = Connection(self._id_of(source), self._id_of(target), from_port or "", to_port or "")
        try:
            self._connections.remove(c)
        except ValueError:
            raise ValueError("no connection %s -> %s" % (c.source, c.target)) from None
        return self

    def _id_of(self, node: NodeRef) -> str:
        nid = node.id if isinstance(node, Node) else node
        if nid not in self._nodes or (isinstance(node, Node) and self._nodes[nid] is not node):
            raise ValueError("node %r is not in this pipeline" % (nid,))
        return nid

    def _fresh_id(self, node_type: str) -> str:
        base = _snake(node_type)[:60]
        if base not in self._nodes:
            return base
        i = 2
        while "%s_%d" % (base, i) in self._nodes:
            i += 1
        return "%s_%d" % (base, i)

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if none)."""
        return self._nodes[node_id]

    @property
    def nodes(self) -> List[Node]:
        return list(self._nodes.values())

    @property
    def connections(self) -> List[Connection]:
        return list(self._connections)

    def sources(self) -> List[str]:
        """Ids of the nodes without incoming connections (where inputs go)."""
        targets = {c.target for c in self._connections}
        return [n for n in self._nodes if n not in targets]

    def sinks(self) -> List[str]:
        """Ids of the nodes without outgoing connections (what is returned by default)."""
        froms = {c.source for c in self._connections}
        return [n for n in self._nodes if n not in froms]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        nid = node.id if isinstance(node, Node) else node
        return nid in self._nodes

    def __repr__(self) -> str:
        return "Pipeline(%r, nodes=%s, connections=%s)" % (
            self.name, list(self._nodes), ["%s->%s" % (c.source, c.target) for c in self._connections])

    # -- manifests -------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The manifest as a dict (the JSON form the server's tools read)."""
        return {"name": self.name,
                "nodes": [n.to_dict() for n in self._nodes.values()],
                "connections": [c.to_dict() for c in self._connections]}

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: Union[str, "os.PathLike[str]"], indent: Optional[int] = 2) -> None:
        """Writes the manifest JSON to path."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json(indent=indent))
            f.write("\n")

    @classmethod
    def from_dict(cls, manifest: Mapping[str, Any], remote: Remote = None,
                  enable_metrics: bool = False, validate: bool = True) -> "Pipeline":
        """A pipeline from a manifest dict. Unknown keys and wrong types raise ValueError,
        as the server's manifest loader does; validate=True also checks each node's params
        against the known schema (InvalidArgument)."""
        if not isinstance(manifest, dict):
            raise ValueError("manifest must be a JSON object")
        _check_keys(manifest, _TOP_KEYS, "manifest")
        p = cls(_opt_str(manifest, "name", "manifest") or "pipeline", remote=remote,
                enable_metrics=enable_metrics)
        for where, n in _objects(manifest, "nodes"):
            _check_keys(n, _NODE_KEYS, where)
            nid, ntype = _req_str(n, "id", where), _req_str(n, "node_type", where)
            params = n.get("params")
            if isinstance(params, str):
                params = json.loads(params) if params.strip() else {}
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ValueError("node '%s': params must be a JSON object" % nid)
            p.add_node(Node(ntype, params, node_id=nid, validate=validate), chain=False)
        for where, c in _objects(manifest, "connections"):
            _check_keys(c, _CONN_KEYS, where)
            p.connect(_req_str(c, "from", where), _req_str(c, "to", where),
                      _opt_str(c, "from_port", where), _opt_str(c, "to_port", where))
        return p

    @classmethod
    def from_json(cls, text: str, remote: Remote = None, enable_metrics: bool = False,
                  validate: bool = True) -> "Pipeline":
        return cls.from_dict(json.loads(text), remote=remote, enable_metrics=enable_metrics,
                             validate=validate)

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], remote: Remote = None,
             enable_metrics: bool = False, validate: bool = True) -> "Pipeline":
        """A pipeline from a manifest JSON file."""
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_json(f.read(), remote=remote, enable_metrics=enable_metrics,
                                 validate=validate)

    def to_proto(self) -> Any:
        """The manifest as a manifest_pb2.PipelineManifest."""
        m = _proto.manifest_pb2.PipelineManifest(name=self.name)
        for n in self._nodes.values():
            m.nodes.add(id=n.id, node_type=n.node_type,
                        params=json.dumps(n.params, allow_nan=False, separators=(",", ":")))
        for c in self._connections:
            e = m.connections.add(to=c.target, from_port=c.from_port, to_port=c.to_port)
            setattr(e, "from", c.source)
        return m

    # -- running ---------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The Client calls go through."""
        return self._client

    def build_request(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> Any:
        """The ExecuteRequest that run() sends (see run() for the arguments)."""
        if not self._nodes:
            raise ValueError("the pipeline has no nodes")
        req = _proto.pipeline_service_pb2.ExecuteRequest(
            manifest=self.to_proto(), enable_metrics=self.enable_metrics)
        given = dict(inputs or {})
        if data is not None:
            srcs = self.sources()
            if not srcs:
                # every node has an incoming connection: inputs= would not help
                raise ValueError("the pipeline has no source node: its connections form a "
                                 "cycle (%s)" % " -> ".join(self._cycle()))
            if len(srcs) != 1:
                raise ValueError("the pipeline has %d source nodes (%s): pass inputs={node_id: data}"
                                 % (len(srcs), ", ".join(srcs)))
            if srcs[0] in given:
                raise ValueError("input for %r given twice (data and inputs=)" % srcs[0])
            given[srcs[0]] = data
        elif not given:
            raise ValueError("run() needs data (for the source node) or inputs={node_id: data} "
                             "(data=None is no data: send JSON null as Json(None))")
        outs = self._output_ids(output_nodes)
        lim = _limits(limits)
        self._fill_inputs(req, given, sample_rate)
        req.output_nodes.extend(outs)
        if lim is not None:
            req.limits.CopyFrom(lim)
        return req

    def _output_ids(self, output_nodes: NodeRefs) -> List[str]:
        """output_nodes= as ids. One node or id is a list of one (a str is one id, not a
        sequence of one-letter ids, as add_node(after=) reads it); a Node must be in this
        pipeline (ValueError). TypeError for anything else."""
        if output_nodes is None:
            return []
        refs: Iterable[Any]
        if isinstance(output_nodes, (str, Node)):
            refs = [output_nodes]
        elif isinstance(output_nodes, (bytes, bytearray, collections.abc.Mapping)) \
                or not isinstance(output_nodes, collections.abc.Iterable):
            raise TypeError("output_nodes must be a node, a node id or a list of them, not %s"
                            % type(output_nodes).__name__)
        else:
            refs = output_nodes
        ids = []
        for i, n in enumerate(refs):
            if isinstance(n, Node):
                ids.append(self._id_of(n))
            elif isinstance(n, str):
                ids.append(n)
            else:
                raise TypeError("output_nodes[%d] must be a node id (str) or a Node, not %s"
                                % (i, type(n).__name__))
        return ids

    def _cycle(self) -> List[str]:
        """A cycle of the connections, as ids from its earliest-added node back to it, when
        every node has an incoming connection (a finite graph then has one): walks the
        connections backwards until a node repeats."""
        into: Dict[str, str] = {}
        for c in self._connections:
            into.setdefault(c.target, c.source)
        seen: Dict[str, int] = {}
        walk: List[str] = []
        n = next(iter(self._nodes))
        while n not in seen:
            seen[n] = len(walk)
            walk.append(n)
            n = into[n]
        ring = walk[seen[n]:][::-1]  # walked backwards: reversed, the edges' direction
        order = list(self._nodes)
        i = ring.index(min(ring, key=order.index))
        ring = ring[i:] + ring[:i]
        return ring + ring[:1]

    @staticmethod
    def _fill_inputs(req: Any, given: Mapping[str, Any], sample_rate: Optional[int]) -> None:
        """Converts the inputs into req. One sample_rate= serves every input that takes a
        rate (bare arrays, lists of numbers); it must serve at least one, or it would be
        dropped silently (ValueError)."""
        rate = StreamRate(sample_rate)
        for nid, value in given.items():
            req.inputs[nid].CopyFrom(rate.convert(value))
        rate.check("the inputs (%s)" % ", ".join(given))

    def _finish(self, response: Any) -> ExecuteResult:
        result = ExecuteResult(response)
        self.last_result = result
        self._metrics = result.metrics
        return result

    async def execute(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> ExecuteResult:
        """Runs the pipeline; returns the full ExecuteResult (see run())."""
        self._metrics = None  # a run that fails, even before sending, leaves no metrics
        req = self.build_request(data, sample_rate, inputs=inputs, output_nodes=output_nodes,
                                 limits=limits)
        try:
            response = await self.client.execute(req, timeout=timeout)
        except BaseException:
            # None after a run that raised (or was cancelled), also when a concurrent run of
            # this pipeline finished before it and set its metrics
            self._metrics = None
            raise
        return self._finish(response)

    def execute_sync(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> ExecuteResult:
        """execute() without asyncio."""
        self._metrics = None  # a run that fails, even before sending, leaves no metrics
        req = self.build_request(data, sample_rate, inputs=inputs, output_nodes=output_nodes,
                                 limits=limits)
        try:
            response = self.client.execute_sync(req, timeout=timeout)
        except BaseException:
            # None after a run that raised (or was cancelled), also when a concurrent run of
            # this pipeline finished before it and set its metrics
            self._metrics = None
            raise
        return self._finish(response)

    async def validate(self, data: Any = None, sample_rate: Optional[int] = None, *,
                       inputs: Optional[Mapping[str, Any]] = None,
                       timeout: Optional[float] = None,
                       output_nodes: NodeRefs = None,
                       limits: Optional[Mapping[str, int]] = None) -> Dict[str, Any]:
        """The dry run of execute() with the same arguments: the
        server checks the manifest, params and inputs as execute() would, raising the same
        errors, and runs nothing. Returns {"pipeline": name, "schedule": [node ids in run
        order], "predicted_memory_bytes": int}."""
        req = self.build_request(data, sample_rate, inputs=inputs, output_nodes=output_nodes,
                                 limits=limits)
        return _validation(await self.client.validate(req, timeout=timeout))

    def validate_sync(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None,
                      timeout: Optional[float] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> Dict[str, Any]:
        """validate() without asyncio."""
        req = self.build_request(data, sample_rate, inputs=inputs, output_nodes=output_nodes,
                                 limits=limits)
        return _validation(self.client.validate_sync(req, timeout=timeout))

    async def run(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> Any:
        """Runs the pipeline on the server and returns its output (ExecuteResult.value).

        Args:
            data: the input of the single source node: an AudioBuffer, a numpy array with
                sample_rate= (1-D mono or [frames, channels]), an (array, rate) tuple, a list
                of numbers with sample_rate= (float32 audio), a JSON value, str, bytes,
                Tensor(...) or Binary(...). None is no data (then inputs= is needed): JSON
                null is Json(None).
            sample_rate: Hz, when data is a bare numpy array.
            inputs: {node_id: data} for pipelines with several sources.
            timeout: deadline in seconds (DeadlineExceeded when it passes); None: the
                RemoteConfig's; float("inf"): none. nan, 0 and negatives raise ValueError.
            output_nodes: the node (or id) whose output to return, or a list of them;
                default every sink.
            limits: per-call limits that may only lower the server's: {"max_nodes",
                "max_audio_samples", "max_input_bytes", "max_execution_ms",
                "max_memory_bytes"}, each an int (max_nodes and max_execution_ms
                0..2**32-1, the others 0..2**64-1; 0: the server's own). ValueError for an
                unknown key or a value out of range.

        Returns: ExecuteResult.value - with one output, its audio as one AudioBuffer (items
        joined), or its item, or its list of items; with several outputs, a dict of those.
        Raises RemoteMediaError subclasses (InvalidArgument, NotFound, DeadlineExceeded...).
        """
        result = await self.execute(data, sample_rate, inputs=inputs, timeout=timeout,
                                    output_nodes=output_nodes, limits=limits)
        return result.value

    def run_sync(self, data: Any = None, sample_rate: Optional[int] = None, *,
                      inputs: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None,
                      output_nodes: NodeRefs = None,
                      limits: Optional[Mapping[str, int]] = None) -> Any:
        """run() without asyncio (a blocking channel; usable anywhere, also inside a loop's
        thread pool)."""
        return self.execute_sync(data, sample_rate, inputs=inputs, timeout=timeout,
                                 output_nodes=output_nodes, limits=limits).value

    # -- streaming -------------------------------------------------------------------------
    def _stream_init(self, output_nodes: NodeRefs,
                     limits: Optional[Mapping[str, int]], metrics_every_chunks: int,
                     metrics_every_ms: int) -> Any:
        from .client import CLIENT_VERSION
        if not self._nodes:
            raise ValueError("the pipeline has no nodes")
        outs = self._output_ids(output_nodes)
        lim = _limits(limits)
        return init_request(self.to_proto(), self.enable_metrics, CLIENT_VERSION, outs, lim,
                            metrics_every_chunks, metrics_every_ms)

    def _set_metrics(self, metrics: Optional[Metrics]) -> None:
        self._metrics = metrics

    def session(self, *, timeout: Optional[float] = None,
                output_nodes: NodeRefs = None,
                limits: Optional[Mapping[str, int]] = None, metrics_every_chunks: int = 0,
                metrics_every_ms: int = 0) -> StreamSession:
        """A streaming session (StreamPipeline) of this pipeline, opened by `async with`
        (or `await session.open()`):

            async with pipeline.session() as s:
                seq = await s.send(chunk, sample_rate=48000)
                result = await s.receive()       # StreamResult, one per chunk
                await s.flush()                  # one result with flushed=True
                rest = await s.close()           # remaining results; metrics after

        timeout: the whole session's deadline in seconds (None: none; the server's idle
        timeout and maximum duration still apply). limits apply per chunk (max_memory_bytes
        to the session). With enable_metrics, metrics_every_chunks / metrics_every_ms ask
        for periodic metrics; the final ones are get_metrics() after close. get_metrics()
        is None from here until metrics arrive, and again if the session fails."""
        self._metrics = None  # a session that fails, even before sending, leaves no metrics
        init = self._stream_init(output_nodes, limits, metrics_every_chunks, metrics_every_ms)
        client = self.client
        return StreamSession(lambda on_close: client.stream_call(timeout, on_close), init,
                             self._set_metrics, client.config.send_limit())

    async def stream(self, chunks: Chunks, sample_rate: Optional[int] = None, *,
                     node_id: str = "", timeout: Optional[float] = None,
                     output_nodes: NodeRefs = None,
                     limits: Optional[Mapping[str, int]] = None,
                     metrics_every_chunks: int = 0,
                     metrics_every_ms: int = 0) -> AsyncIterator[StreamResult]:
        """Streams chunks through one session and yields a StreamResult per chunk, then
        the flushed result of the closing flush (flushed=True, last):

            async for result in pipeline.stream(chunks, sample_rate=48000):
                result.sequence, result.outputs, result.processing_ns

        chunks: a sync or async iterable of numpy arrays (with sample_rate=), AudioBuffers,
        or other values run() accepts; remotemedia.stream.FLUSH among them flushes there.
        sample_rate= serves the chunks that take a rate and must serve at least one, as
        with run(inputs=...) (ValueError when the chunks end, if none took it).
        The chunks are sent as gRPC flow control allows while results are read. Metrics
        (enable_metrics) are get_metrics() once the iteration ends. Errors raise the
        RemoteMediaError subclasses run() raises (.sequence names the failing chunk), after
        the results that arrived before them; a session a draining server closed (status OK
        before the chunks ended) raises Unavailable. Leaving early cancels the session when
        the generator is closed (aclose(); else when it is garbage-collected)."""
        session = self.session(timeout=timeout, output_nodes=output_nodes, limits=limits,
                               metrics_every_chunks=metrics_every_chunks,
                               metrics_every_ms=metrics_every_ms)
        # the reader below reads; the writer's sends wait for the end it meets, so a consumer
        # slower than the server holds back the chunks (gRPC flow control), not memory
        session._reads_ahead = False
        await session.open()
        ok = False

        async def writer() -> None:
            rate = StreamRate(sample_rate)
            try:
                async for c in iterate(chunks):
                    if c is FLUSH:
                        await session.flush()
                    else:
                        await session.send(rate.convert(c), node_id=node_id)
                rate.check()
                await session.close_send()
            except BaseException:
                # the reader then stops; the error raised is this one. A session that has
                # ended (the error is its end) is not cancelled: the reader first yields the
                # results that arrived before the end.
                if not session._over:
                    session.cancel()
                raise

        task = asyncio.ensure_future(writer())
        try:
            while True:
                try:
                    r = await session.receive()
                except BaseException:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception() from None  # type: ignore[misc]
                    raise
                if r is None:
                    break
                yield r
            await task
            ok = True
        except BaseException:
            # a failed, cancelled or abandoned stream leaves no metrics (not even periodic
            # ones)
            self._metrics = None
            raise
        finally:
            if not ok:
                session.cancel()
                task.cancel()
                try:
                    await task
                except BaseException:  # already raised, or the reader's error wins
                    pass

    def stream_sync(self, chunks: Iterable[Any], sample_rate: Optional[int] = None, *,
                    node_id: str = "", timeout: Optional[float] = None,
                    output_nodes: NodeRefs = None,
                    limits: Optional[Mapping[str, int]] = None, metrics_every_chunks: int = 0,
                    metrics_every_ms: int = 0) -> Iterator[StreamResult]:
        """stream() without asyncio (a blocking channel): chunks is a plain iterable, read
        on a gRPC thread as the call can take them."""
        self._metrics = None  # a stream that fails, even before sending, leaves no metrics
        init = self._stream_init(output_nodes, limits, metrics_every_chunks, metrics_every_ms)
        failed: List[BaseException] = []  # a chunk that could not be sent (gRPC's thread)
        responses = self.client.stream_sync(
            sync_requests(init, chunks, sample_rate, node_id, failed,
                          self.client.config.send_limit()), timeout=timeout)
        try:
            first = next(responses, None)
            if first is None or first.WhichOneof("message") != "ready":
                raise RemoteMediaError("the server did not answer init with ready",
                                       grpc.StatusCode.INTERNAL, from_server=False)
            for msg in responses:
                which = msg.WhichOneof("message")
                if which == "metrics":
                    self._metrics = metrics_to_dict(msg.metrics.metrics)
                elif which == "result":
                    yield StreamResult(msg.result)
        except BaseException as e:
            # a failed or abandoned stream leaves no metrics (not even periodic ones)
            self._metrics = None
            if failed and isinstance(e, RemoteMediaError):
                raise failed[0] from None
            raise
        finally:
            responses.close()  # cancels the call when the caller stopped early

    def get_metrics(self) -> Optional[Metrics]:
        """The last run's metrics as the seed's dict (pipeline_id, total_executions,
        total_duration_us, total_duration_ms, peak_memory_bytes, peak_memory_mb,
        metrics_overhead_us, node_metrics[...]), or None when metrics were off or the last
        run to finish failed (raised, was cancelled, or was a stream left early)."""
        return self._metrics

    # -- the server ------------------------------------------------------------------------
    async def list_node_types(self, timeout: Optional[float] = None) -> List[NodeTypeSchema]:
        """The server's node types (Client.list_node_types)."""
        return await self.client.list_node_types(timeout=timeout)

    def list_node_types_sync(self, timeout: Optional[float] = None) -> List[NodeTypeSchema]:
        """list_node_types() without asyncio."""
        return self.client.list_node_types_sync(timeout=timeout)

    async def health_check(self, service: str = "", timeout: Optional[float] = None) -> str:
        """The server's serving status (Client.health_check)."""
        return await self.client.health_check(service, timeout=timeout)

    def health_check_sync(self, service: str = "", timeout: Optional[float] = None) -> str:
        """health_check() without asyncio."""
        return self.client.health_check_sync(service, timeout=timeout)

    async def get_version(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The server's versions and services (Client.get_version)."""
        return await self.client.get_version(timeout=timeout)

    # -- lifetime --------------------------------------------------------------------------
    async def close(self) -> None:
        """Closes the pipeline's own client (not one that was passed in)."""
        if self._owns_client:
            await self._client.close()

    def close_sync(self) -> None:
        """close() without asyncio."""
        if self._owns_client:
            self._client.close_sync()

    async def __aenter__(self) -> "Pipeline":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_sync()


def _limits(limits: Optional[Mapping[str, int]]) -> Any:
    """limits= as an ExecutionLimits message, or None when there are none. An unknown key,
    or a value that is not an integer (bool is not one) in its field's range, raises
    ValueError naming the key and the range (protobuf's own errors name neither, and it
    would truncate a float)."""
    if limits is None:
        return None
    if not isinstance(limits, collections.abc.Mapping):
        raise TypeError("limits must be a dict {name: int}, not %s" % type(limits).__name__)
    bad = [str(k) for k in limits if k not in _LIMITS]
    if bad:
        raise ValueError("unknown limits: %s" % ", ".join(sorted(bad)))
    for key, value in limits.items():
        top = _LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or not 0 <= int(value) <= top:
            raise ValueError("limits: %s must be an integer 0..%d (0: the server's own limit), "
                             "not %r" % (key, top, value))
    if not limits:
        return None
    return _proto.pipeline_service_pb2.ExecutionLimits(**{k: int(v) for k, v in limits.items()})


def _validation(resp: Any) -> Dict[str, Any]:
    return {"pipeline": resp.pipeline_name, "schedule": list(resp.schedule),
            "predicted_memory_bytes": int(resp.predicted_memory_bytes)}


def _objects(manifest: Mapping[str, Any], key: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(where, object) for each entry of the manifest's array `key` (absent: none)."""
    items = manifest.get(key, [])
    if not isinstance(items, list):
        raise ValueError("manifest: '%s' must be an array" % key)
    for i, item in enumerate(items):
        where = "%s[%d]" % (key, i)
        if not isinstance(item, dict):
            raise ValueError("%s must be an object" % where)
        yield where, item


def _check_keys(obj: Mapping[str, Any], allowed: Tuple[str, ...], where: str) -> None:
    for k in obj:
        if k not in allowed:
            raise ValueError("%s: unknown key '%s'" % (where, k))


def _req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise ValueError("%s: missing '%s'" % (where, key))
    v = obj[key]
    if not isinstance(v, str):
        raise ValueError("%s: '%s' must be a string" % (where, key))
    return v


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    v = obj.get(key, "")
    if not isinstance(v, str):
        raise ValueError("%s: '%s' must be a string" % (where, key))
    return v


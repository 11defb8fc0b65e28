"""nodes.py - pipeline nodes: the generic Node and one class per server node type.

The classes are generated at build time (client/python/generate_node_classes.py writes
remotemedia/_node_types.py) from node_schema.json, which the build dumps from the engine's
own registry (client/python/node_schema_dump.c): real classes with typed keyword
parameters, so editors and mypy see `Gain(db: float = 0, ...)`, and at run time they carry
exactly the parameter names, types, ranges and descriptions the server validates with.
Each class is also available under the reference SDK's name with a `Node` suffix
(`AudioResampleNode` is `AudioResample`). A different server (newer, older) can be
followed at run time:

    remotemedia.nodes.refresh(RemoteConfig("rm.example:50051"))  # from its ListNodeTypes

    from remotemedia.nodes import Gain
    Gain(db=-6)                      # checked here: keys, types, ranges, enum values
    Gain(db=-6, node_id="g")         # explicit node id (otherwise one is made up)
    Node("Gain", {"db": -6}, node_id="g")   # the generic form, for any type name

Only the parameters given are sent; the server applies the defaults the signatures show.
Classes are refreshed in place, so names imported before a refresh follow it.
"""
import inspect
import json
import os
import re
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Type, Union

from .schema import SEED_PARAM_ALIASES, NodeTypeSchema

if TYPE_CHECKING:
    from .client import Client
    from .config import RemoteConfig
    from .pipeline import Pipeline

__all__ = ["Node", "refresh", "refresh_async", "load_schema", "schema_of", "node_types",
           "SCHEMA_FILE", "NODE_SUFFIX"]

#: Every node class is also exported under its name with this suffix (the reference SDK's
#: spelling: AudioResampleNode is AudioResample).
NODE_SUFFIX = "Node"

#: What refresh() accepts as the server to ask.
Remote = Union["RemoteConfig", str, "Client", "Pipeline"]

#: Name of the generated schema file, looked up in every directory of the remotemedia
#: package path (client/python/remotemedia and <build>/python_gen/remotemedia). The
#: environment variable RM_NODE_SCHEMA may name another file.
SCHEMA_FILE = "node_schema.json"

_RESERVED = ("node_id", "validate", "params")
_lock = threading.RLock()
_schemas: Dict[str, NodeTypeSchema] = {}  # type name -> schema
_classes: Dict[str, Type["Node"]] = {}     # type name -> its class (generated or made here)
_schema_source: Optional[str] = None       # where _schemas came from, for messages


class Node:
    """One node of a pipeline: an id, a type name and its JSON params.

    Args:
        node_type: a type name the server lists (ListNodeTypes).
        params: dict of parameters (merged with keyword params).
        node_id: unique id in the pipeline, [A-Za-z0-9_-]{1,64}; made up when the node is
            added to a pipeline without one.
        validate: check params against the known schema now (InvalidArgument on failure).
            Types the client has no schema for are passed to the server unchecked.
    """

    node_type: Optional[str] = None  # set on generated subclasses (and on every instance)
    schema: Optional[NodeTypeSchema] = None
    params: Dict[str, Any]
    id: Optional[str]
    #: The pipeline holding this node (a weak reference), so a second one can refuse it.
    _pipeline: Optional["weakref.ReferenceType[Any]"] = None

    def __init__(self, node_type: Optional[str] = None,
                 params: Optional[Mapping[str, Any]] = None, *, node_id: Optional[str] = None,
                 validate: bool = True, **kwparams: Any) -> None:
        node_type = node_type or type(self).node_type
        if not isinstance(node_type, str) or not node_type:
            raise TypeError("Node needs a node type name")
        merged = dict(params or {})
        merged.update(kwparams)
        schema = type(self).schema if type(self).node_type == node_type else None
        if schema is None:
            schema = _schemas.get(node_type)
        merged = _apply_aliases(node_type, schema, merged)
        if node_id is not None:
            _check_id(node_id)
        if validate and schema is not None:
            merged = schema.validate_params(merged, node_id)
        else:
            merged = json.loads(json.dumps(merged, allow_nan=False, default=_plain))
        self.node_type = node_type
        self.params = merged
        self.id = node_id

    @property
    def known_schema(self) -> Optional[NodeTypeSchema]:
        """The schema this client knows for the node's type, or None."""
        return _schemas.get(self.node_type or "")

    def to_dict(self) -> Dict[str, Any]:
        """{"id", "node_type", "params"} as in a manifest's "nodes" list."""
        return {"id": self.id, "node_type": self.node_type, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], validate: bool = False) -> "Node":
        """A Node from one entry of a manifest's "nodes" list."""
        return Node(d["node_type"], d.get("params") or {}, node_id=d["id"], validate=validate)

    def __repr__(self) -> str:
        args = ", ".join("%s=%r" % kv for kv in self.params.items())
        ident = "node_id=%r" % self.id if self.id else ""
        if type(self) is Node:
            return "Node(%r, {%s}%s)" % (self.node_type, args, ", " + ident if ident else "")
        return "%s(%s)" % (self.node_type, ", ".join(a for a in (args, ident) if a))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Node) and self.node_type == other.node_type
                and self.params == other.params and self.id == other.id)

    __hash__ = object.__hash__

    def __getstate__(self) -> Dict[str, Any]:
        """The state pickle and copy keep: everything but the owning pipeline. A weak
        reference cannot be pickled, and a pickled or copied node is a new node that no
        pipeline holds, so it may be added to one."""
        state = dict(self.__dict__)
        state.pop("_pipeline", None)
        return state


_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: re.match's $ passes "g\n"


def _check_id(node_id: Any) -> None:
    if not isinstance(node_id, str) or not _ID_RE.fullmatch(node_id):
        raise ValueError("node id %r must be 1-64 characters of [A-Za-z0-9_-]" % (node_id,))


def _plain(o: Any) -> Any:
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError("param value %r is not JSON serialisable" % (o,))


def _apply_aliases(node_type: str, schema: Optional[NodeTypeSchema],
                   params: Dict[str, Any]) -> Dict[str, Any]:
    aliases = SEED_PARAM_ALIASES.get(node_type)
    if not aliases or schema is None:
        return params
    out = dict(params)
    for alias, target in aliases.items():
        if alias in out and schema.param(alias) is None and schema.param(target) is not None:
            if target in out:
                raise TypeError("%s: give either %s or its seed alias %s, not both"
                                % (node_type, target, alias))
            out[target] = out.pop(alias)
    return out


# -- generated classes -------------------------------------------------------------------

def _signature(schema: NodeTypeSchema) -> inspect.Signature:
    ps = []
    for p in schema.params:
        if p.name in _RESERVED or not p.name.isidentifier():
            continue
        default = inspect.Parameter.empty if p.required else p.default
        ps.append(inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                    annotation=p.python_type()))
    ps.append(inspect.Parameter("node_id", inspect.Parameter.KEYWORD_ONLY, default=None))
    ps.append(inspect.Parameter("validate", inspect.Parameter.KEYWORD_ONLY, default=True))
    return inspect.Signature(ps)


def _generated_init(self: Node, params: Optional[Mapping[str, Any]] = None, *,
                    node_id: Optional[str] = None, validate: bool = True,
                    **kwparams: Any) -> None:
    """__init__ of every node class: its type name, the given params, node_id=, validate=."""
    Node.__init__(self, type(self).node_type, params, node_id=node_id, validate=validate,
                  **kwparams)


def _class_for(schema: NodeTypeSchema) -> Type[Node]:
    """The class of a node type: the generated one, or one made here for a type the build
    did not know; updated to the schema in place."""
    cls = _classes.get(schema.name)
    if cls is None:
        cls = type(schema.name, (Node,), {"__init__": _generated_init, "__module__": __name__})
        _classes[schema.name] = cls
    cls.node_type = schema.name
    cls.schema = schema
    cls.__doc__ = schema.doc()
    setattr(cls, "__signature__", _signature(schema))
    return cls


def _export(mod: Any, name: str, cls: Optional[Type[Node]]) -> None:
    """Sets (cls) or removes (None) the module attributes `name` and `name`Node, never
    replacing one of this module's own names."""
    for attr in (name, name + NODE_SUFFIX):
        current = vars(mod).get(attr)
        ours = current is not None and any(current is c for c in _classes.values())
        if cls is None:
            if ours and current is _classes.get(name):
                delattr(mod, attr)
                if attr in __all__:
                    __all__.remove(attr)
        elif current is None or ours:
            setattr(mod, attr, cls)
            if attr not in __all__:
                __all__.append(attr)


def _install(schemas: List[NodeTypeSchema], source: str) -> None:
    """Makes `schemas` the known node types."""
    global _schema_source
    mod = sys.modules[__name__]
    with _lock:
        new = {s.name: s for s in schemas}
        for name in list(_schemas) + list(_classes):
            if name not in new:
                _export(mod, name, None)
        _schemas.clear()
        _schemas.update(new)
        for s in schemas:
            if not s.name.isidentifier() or (hasattr(mod, s.name) and s.name not in _classes):
                continue  # not a usable name, or would shadow this module's own API
            _export(mod, s.name, _class_for(s))
        _schema_source = source


def _find_schema_file() -> Optional[str]:
    env = os.environ.get("RM_NODE_SCHEMA")
    if env:
        return env
    pkg = sys.modules[__name__.rpartition(".")[0]]
    for d in getattr(pkg, "__path__", ()):
        path = os.path.join(d, SCHEMA_FILE)
        if os.path.isfile(path):
            return path
    return None


def load_schema(path: Optional[str] = None) -> List[str]:
    """(Re)loads the node types from a node_schema.json file (default: the one the build
    generated, found on the package path, or $RM_NODE_SCHEMA). Returns the type names."""
    path = path or _find_schema_file()
    if path is None:
        return []
    with open(path, "r", encoding="utf-8") as f:
        doc = json.load(f)
    _install([NodeTypeSchema.from_dict(t) for t in doc["node_types"]], path)
    return sorted(_schemas)


def refresh(remote: Remote, timeout: Optional[float] = None) -> List[str]:
    """Rebuilds the node classes from a live server's ListNodeTypes (synchronous).

    remote: a RemoteConfig, an address string, a remotemedia.Client or a Pipeline.
    Returns the list of type names."""
    from .client import client_for
    client, owned = client_for(remote)
    try:
        types = client.list_node_types_sync(timeout=timeout)
    finally:
        if owned:
            client.close_sync()
    _install(types, "ListNodeTypes of %s" % client.config.address)
    return sorted(_schemas)


async def refresh_async(remote: Remote, timeout: Optional[float] = None) -> List[str]:
    """refresh() for asyncio code."""
    from .client import client_for
    client, owned = client_for(remote)
    try:
        types = await client.list_node_types(timeout=timeout)
    finally:
        if owned:
            await client.close()
    _install(types, "ListNodeTypes of %s" % client.config.address)
    return sorted(_schemas)


def schema_of(node_type: str) -> Optional[NodeTypeSchema]:
    """The NodeTypeSchema for a type name, or None."""
    return _schemas.get(node_type)


def node_types() -> List[str]:
    """The known type names, sorted."""
    return sorted(_schemas)


if not TYPE_CHECKING:  # for type checkers, the node classes are the generated ones only
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        src = _schema_source or "no schema (node_schema.json not found on the remotemedia path)"
        raise AttributeError(
            "remotemedia.nodes has no node type %r (types from %s: %s). Call "
            "remotemedia.nodes.refresh(remote) to load a server's types, or use "
            "Node(%r, {...})." % (name, src, ", ".join(sorted(_schemas)) or "none", name))


# The classes generated at build time (absent when the package runs from a source tree
# without the build; then load_schema() makes them from node_schema.json alone).
try:
    from ._node_types import *  # type: ignore[import]  # noqa: E402,F401,F403
    from ._node_types import CLASSES as _GENERATED  # type: ignore[import]  # noqa: E402
except ModuleNotFoundError as _e:  # pragma: no cover - depends on the installation
    if _e.name != __name__.rpartition(".")[0] + "._node_types":
        raise
    _GENERATED = {}
_classes.update(_GENERATED)
load_schema()

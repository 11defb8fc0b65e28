"""schema.py - node type schemas (what ListNodeTypes answers) and client-side parameter
validation with the server's per-parameter rules.

A schema comes from the build's node_schema.json (dumped from the engine's registry) or
from a live server's ListNodeTypes; both have the same fields. validate_params() applies
the rules of lib/params.c: an unknown key, a wrong type, a value out of the inclusive
[minimum, maximum] range, an enum value not listed, or a missing required key is an
InvalidArgument naming the node and the key, raised before anything is sent. Rules that
relate parameters (Spectrogram's hop <= n_fft, ...) are not in the schema: only the server
checks them (InvalidArgument naming node and field when the pipeline runs or is validated).
"""
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Tuple

import grpc
import numpy as np

from .errors import InvalidArgument

__all__ = ["ParamSchema", "PortSchema", "NodeTypeSchema", "SEED_PARAM_ALIASES"]

# The seed SDK's parameter spellings, accepted as aliases where the server's schema has the
# target and not the alias (the seed wrote AudioResample(target_rate=...); the server's
# parameter is `rate`): {type name: {alias: parameter}}.
SEED_PARAM_ALIASES: Dict[str, Dict[str, str]] = {"AudioResample": {"target_rate": "rate"}}

_KIND_NAMES = {1: "audio", 2: "tensor", 3: "json", 4: "text", 5: "binary"}
_MAX_EXACT = 9007199254740992.0  # 2^53: integers beyond it are not exact in a double


@dataclass(frozen=True)
class ParamSchema:
    name: str
    type: str  # "number", "integer", "boolean", "string", "enum", "number_array"
    description: str = ""
    required: bool = False
    default_json: str = ""  # JSON text; "" when required, "null" for optional without default
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    enum_values: Tuple[str, ...] = ()

    @property
    def default(self) -> Any:
        """The default as a Python value (None when required or optional without one)."""
        return json.loads(self.default_json) if self.default_json else None

    @property
    def nullable(self) -> bool:
        """An explicit None means "not set" (the schema's default is null)."""
        return self.default_json == "null"

    def python_type(self) -> Any:
        return {"number": float, "integer": int, "boolean": bool, "string": str, "enum": str,
                "number_array": List[float]}.get(self.type, object)

    def range_text(self) -> str:
        lo = "[%s" % _num(self.minimum) if self.minimum is not None else "(-inf"
        hi = "%s]" % _num(self.maximum) if self.maximum is not None else "inf)"
        return "%s, %s" % (lo, hi)

    def describe(self) -> str:
        """One line for docstrings: name (type, range or values, default): description."""
        bits = [self.type]
        if self.type == "enum":
            bits.append("one of " + ", ".join(self.enum_values))
        elif self.minimum is not None or self.maximum is not None:
            bits.append("in " + self.range_text())
        bits.append("required" if self.required else "default " + self.default_json)
        return "%s (%s): %s" % (self.name, "; ".join(bits), self.description)


@dataclass(frozen=True)
class PortSchema:
    name: str
    kinds: Tuple[str, ...] = ()  # "audio", "tensor", "json", "text", "binary"
    variadic: bool = False
    same_as_input: bool = False


@dataclass(frozen=True)
class NodeTypeSchema:
    name: str
    description: str = ""
    params: Tuple[ParamSchema, ...] = ()
    inputs: Tuple[PortSchema, ...] = ()
    outputs: Tuple[PortSchema, ...] = ()
    _by_name: Dict[str, ParamSchema] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    def param(self, name: str) -> Optional[ParamSchema]:
        """The ParamSchema called name, or None."""
        return self._by_name.get(name)

    def doc(self) -> str:
        """The docstring of this type's node class: description, parameters (type, range or
        values, default), ports."""
        lines = [self.description or self.name, ""]
        if self.params:
            lines.append("Parameters:")
            lines.extend("    " + p.describe() for p in self.params)
        else:
            lines.append("No parameters.")
        for label, ports in (("Inputs", self.inputs), ("Outputs", self.outputs)):
            if ports:
                lines.append("%s: %s" % (label, ", ".join(
                    "%s (%s%s)" % (p.name, "|".join(p.kinds), ", fan-in" if p.variadic else "")
                    for p in ports)))
        lines.append("")
        lines.append("Generated from the server's node registry; node_id= sets the node's id.")
        return "\n".join(lines)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NodeTypeSchema":
        """From one entry of node_schema.json."""
        params = tuple(
            ParamSchema(
                name=p["name"], type=p["type"], description=p.get("description", ""),
                required=bool(p.get("required", False)), default_json=p.get("default_json", ""),
                minimum=p["minimum"] if p.get("has_minimum") else None,
                maximum=p["maximum"] if p.get("has_maximum") else None,
                enum_values=tuple(p.get("enum_values", ())))
            for p in d.get("params", ()))
        return cls(name=d["name"], description=d.get("description", ""), params=params,
                   inputs=tuple(_port_from_dict(x) for x in d.get("inputs", ())),
                   outputs=tuple(_port_from_dict(x) for x in d.get("outputs", ())))

    @classmethod
    def from_proto(cls, t: Any) -> "NodeTypeSchema":
        """From a pipeline_service_pb2.NodeTypeInfo."""
        params = tuple(
            ParamSchema(
                name=p.name, type=p.type, description=p.description, required=p.required,
                default_json=p.default_json,
                minimum=p.minimum if p.has_minimum else None,
                maximum=p.maximum if p.has_maximum else None,
                enum_values=tuple(p.enum_values))
            for p in t.params)
        return cls(name=t.name, description=t.description, params=params,
                   inputs=tuple(_port_from_proto(x) for x in t.inputs),
                   outputs=tuple(_port_from_proto(x) for x in t.outputs))

    def to_dict(self) -> Dict[str, Any]:
        """The node_schema.json form of this schema."""
        return {
            "name": self.name, "description": self.description,
            "params": [{
                "name": p.name, "type": p.type, "description": p.description,
                "required": p.required, "default_json": p.default_json,
                "has_minimum": p.minimum is not None,
                "minimum": float(p.minimum) if p.minimum is not None else 0.0,
                "has_maximum": p.maximum is not None,
                "maximum": float(p.maximum) if p.maximum is not None else 0.0,
                "enum_values": list(p.enum_values)} for p in self.params],
            "inputs": [_port_to_dict(x) for x in self.inputs],
            "outputs": [_port_to_dict(x) for x in self.outputs],
        }

    # -- validation --------------------------------------------------------------------
    def validate_params(self, params: Mapping[str, Any],
                        node_id: Optional[str] = None) -> Dict[str, Any]:
        """params (a mapping) checked one by one with the server's rules (keys, types,
        ranges, enum values; not rules between parameters) and converted to plain JSON
        values (numpy scalars and arrays become int/float/bool/list). Raises InvalidArgument
        naming the node (node_id, or the type name when the node has no id yet) and key."""
        who = "node '%s'" % node_id if node_id else "%s" % self.name
        out: Dict[str, Any] = {}
        for key, value in params.items():
            spec = self.param(key)
            if spec is None:
                known = ", ".join(p.name for p in self.params) or "none"
                _fail(node_id, key, "%s: unknown param '%s' (%s takes: %s)"
                      % (who, key, self.name, known))
            out[key] = _check_value(spec, value, who, node_id)
        for spec in self.params:
            if spec.required and spec.name not in out:
                _fail(node_id, spec.name, "%s: missing required param '%s'" % (who, spec.name))
        return out


def _port_from_dict(d: Mapping[str, Any]) -> PortSchema:
    return PortSchema(name=d["name"], kinds=tuple(d.get("kinds", ())),
                      variadic=bool(d.get("variadic", False)),
                      same_as_input=bool(d.get("same_as_input", False)))


def _port_from_proto(p: Any) -> PortSchema:
    return PortSchema(name=p.name, kinds=tuple(_KIND_NAMES.get(k, str(k)) for k in p.kinds),
                      variadic=p.variadic, same_as_input=p.same_as_input)


def _port_to_dict(p: PortSchema) -> Dict[str, Any]:
    return {"name": p.name, "kinds": list(p.kinds), "variadic": p.variadic,
            "same_as_input": p.same_as_input}


def _num(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() and abs(v) < 1e16 else repr(float(v))


def _fail(node_id: Optional[str], key: str, message: str) -> NoReturn:
    raise InvalidArgument(message, grpc.StatusCode.INVALID_ARGUMENT, node_id=node_id, field=key,
                          kind="invalid_params", from_server=False)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (int, np.integer)):
        return "integer"
    if isinstance(v, (float, np.floating)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _check_range(spec: ParamSchema, v: Any, who: str, node_id: Optional[str],
                 what: str = "") -> None:
    d = float(v)
    if not math.isfinite(d) or (spec.minimum is not None and d < spec.minimum) or \
            (spec.maximum is not None and d > spec.maximum):
        _fail(node_id, spec.name, "%s param '%s': %s%r is out of range %s"
              % (who, spec.name, what, v, spec.range_text()))


def _check_value(spec: ParamSchema, v: Any, who: str, node_id: Optional[str]) -> Any:
    """The JSON-ready value of v, or raises InvalidArgument."""
    if v is None and spec.nullable:
        return None
    t = spec.type
    if t == "number" and _is_number(v):
        _check_range(spec, v, who, node_id)
        return v.item() if isinstance(v, np.generic) else v
    if t == "integer" and _is_number(v):
        if isinstance(v, (float, np.floating)):
            d = float(v)
            if not math.isfinite(d) or d != math.floor(d) or abs(d) > _MAX_EXACT:
                _fail(node_id, spec.name, "%s param '%s': expected integer, got %r"
                      % (who, spec.name, v))
            v = int(d)
        v = int(v)
        _check_range(spec, v, who, node_id)
        return v
    if t == "boolean" and isinstance(v, (bool, np.bool_)):
        return bool(v)
    if t == "string" and isinstance(v, str):
        return v
    if t == "enum" and isinstance(v, str):
        if v not in spec.enum_values:
            _fail(node_id, spec.name, "%s param '%s': '%s' is not one of: %s"
                  % (who, spec.name, v, ", ".join(spec.enum_values)))
        return v
    if t == "number_array" and isinstance(v, (list, tuple, np.ndarray)):
        items = v.tolist() if isinstance(v, np.ndarray) else list(v)
        out = []
        for i, el in enumerate(items):
            if not _is_number(el):
                _fail(node_id, spec.name, "%s param '%s': element %d: expected number, got %s"
                      % (who, spec.name, i, _json_type(el)))
            _check_range(spec, el, who, node_id, "element %d = " % i)
            out.append(el.item() if isinstance(el, np.generic) else el)
        return out
    expected = "string" if t == "enum" else t
    _fail(node_id, spec.name, "%s param '%s': expected %s, got %s"
          % (who, spec.name, expected, _json_type(v)))

#!/usr/bin/env python3
"""generate_node_classes.py - writes remotemedia/_node_types.py, one class per node type.

    /usr/bin/python3 client/python/generate_node_classes.py SCHEMA.json OUT.py

SCHEMA.json is node_schema.json as the build dumps it from the engine's registry
(rm_node_schema_dump) or generate_stubs.py --schema-from writes it from a server's
ListNodeTypes. OUT.py gets a real class per type (a Node subclass with the type's
docstring: description, parameters with their types, ranges and defaults, ports), the
same class under its `...Node` name, and for type checkers a keyword-only __init__ with
the parameters' Python types (enum values as Literal, nullable ones as Optional) and the
server's defaults. At run time the classes take the given params only (remotemedia.nodes
validates them with the server's rules), so the server applies its own defaults.
Exit status 0, or 1 with a message.
"""
import importlib
import json
import keyword
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))

# Keyword arguments every node class takes besides its parameters (remotemedia.nodes).
RESERVED = ("node_id", "validate", "params")
# Names the remotemedia.nodes module defines itself: a node type may not shadow them.
MODULE_NAMES = ("Node", "refresh", "refresh_async", "load_schema", "schema_of", "node_types",
                "SCHEMA_FILE", "NODE_SUFFIX", "Remote", "CLASSES")
SUFFIX = "Node"


def _schema_module():
    """remotemedia.schema from this source tree, without the package's __init__ (which
    needs the generated stubs this build step may not have yet)."""
    if "remotemedia" not in sys.modules:
        pkg = types.ModuleType("remotemedia")
        pkg.__path__ = [os.path.join(HERE, "remotemedia")]
        sys.modules["remotemedia"] = pkg
    return importlib.import_module("remotemedia.schema")


def _annotation(p):
    base = {"number": "float", "integer": "int", "boolean": "bool", "string": "str",
            "number_array": "Sequence[float]"}.get(p.type)
    if p.type == "enum":
        base = "Literal[%s]" % ", ".join(json.dumps(v) for v in p.enum_values)
    if base is None:
        base = "Any"
    return "Optional[%s]" % base if p.nullable else base


def _param(p, name=None, required=None):
    """One keyword parameter of the typed __init__, e.g. `db: float = 0`."""
    required = p.required if required is None else required
    text = "%s: %s" % (name or p.name, _annotation(p))
    if not required:
        text += " = %r" % (p.default,)
    return text


def _init(params, indent):
    """The typed __init__, one parameter a line."""
    args = ["self", "*"] + params + ["node_id: Optional[str] = None", "validate: bool = True"]
    lines = [indent + "def __init__("]
    lines += [indent + "    " + a + "," for a in args]
    lines.append(indent + ") -> None: ...")
    return "\n".join(lines)


def _class(schema, aliases):
    usable = [p for p in schema.params if p.name not in RESERVED and p.name.isidentifier()
              and not keyword.iskeyword(p.name)]
    names = {p.name for p in usable}
    # seed aliases: another spelling of a parameter (a required one gives a second overload)
    alias_of = {a: t for a, t in aliases.get(schema.name, {}).items()
                if t in names and a not in names and a.isidentifier()}
    doc = schema.doc().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    out = ["class %s(Node):" % schema.name,
           '    """' + doc.replace("\n", "\n    ").replace("\n    \n", "\n\n") + '\n    """',
           "",
           "    node_type = %r" % schema.name,
           "",
           "    if TYPE_CHECKING:"]
    required_aliases = {a: t for a, t in alias_of.items() if schema.param(t).required}
    optional_aliases = {a: t for a, t in alias_of.items() if a not in required_aliases}
    extra = ["%s: Optional[%s] = None" % (a, _annotation(schema.param(t)))
             for a, t in optional_aliases.items()]
    if required_aliases:
        variants = [[_param(p) for p in usable] + extra]
        for a, t in required_aliases.items():
            variants.append([_param(schema.param(t), name=a) if p.name == t else _param(p)
                             for p in usable] + extra)
        for v in variants:
            out += ["        @overload", _init(v, "        ")]
        out.append("        def __init__(self, **kwargs: Any) -> None: ...")
    else:
        out.append(_init([_param(p) for p in usable] + extra, "        "))
    out += ["    else:", "        __init__ = _generated_init", "", "",
            "%s%s = %s" % (schema.name, SUFFIX, schema.name)]
    return "\n".join(out)


def generate(schema_path, out_path):
    schema_mod = _schema_module()
    with open(schema_path, "r", encoding="utf-8") as f:
        doc = json.load(f)
    schemas = [schema_mod.NodeTypeSchema.from_dict(t) for t in doc["node_types"]]
    usable = [s for s in schemas if s.name.isidentifier() and not keyword.iskeyword(s.name)
              and s.name not in MODULE_NAMES and s.name + SUFFIX not in MODULE_NAMES]
    names = [s.name for s in usable]
    exported = sorted(names + [n + SUFFIX for n in names])
    parts = [
        "# Generated by client/python/generate_node_classes.py from %s. Do not edit."
        % os.path.basename(schema_path),
        '"""_node_types.py - one class per node type of the server the package was built '
        'with.\n\nImport them from remotemedia.nodes (which also follows a live server\'s '
        'ListNodeTypes\nthrough refresh()).\n"""',
        "from typing import (  # noqa: F401",
        "    TYPE_CHECKING, Any, Dict, Literal, Optional, Sequence, Type, overload)",
        "",
        "from .nodes import Node, _generated_init",
        "",
        "__all__ = [\n%s\n]" % "\n".join("    %s," % json.dumps(n) for n in exported),
    ]
    for s in usable:
        parts += ["", "", _class(s, schema_mod.SEED_PARAM_ALIASES)]
    parts += ["", "", "#: type name -> class, for remotemedia.nodes",
              "CLASSES: Dict[str, Type[Node]] = {",
              *("    %r: %s," % (n, n) for n in names), "}", ""]
    text = "\n".join(parts)
    compile(text, out_path, "exec")  # a generator bug fails the build, not the import
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_path)
    return len(usable)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: generate_node_classes.py SCHEMA.json OUT.py", file=sys.stderr)
        return 1
    try:
        generate(argv[0], argv[1])
    except (OSError, ValueError, KeyError) as e:
        print("generate_node_classes: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

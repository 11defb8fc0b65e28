"""Node classes generated from the registry: they match the live server's ListNodeTypes field
for field, follow it through refresh(), and validate params with the server's own rules."""
import inspect
import json
import re

import numpy as np
import pytest

from conftest import arun
from remotemedia import Client, InvalidArgument, Node, Pipeline
from remotemedia import nodes as rm_nodes
from remotemedia.schema import NodeTypeSchema


def test_list_node_types_has_gain(remote):
    with Client(remote) as c:
        types = {t.name: t for t in c.list_node_types_sync()}
    gain = types["Gain"]
    assert [p.name for p in gain.params] == ["db"]
    db = gain.param("db")
    assert (db.type, db.required, db.default_json, db.default) == ("number", False, "0", 0)
    assert (db.minimum, db.maximum, db.enum_values) == (-120, 60, ())
    assert "dB" in db.description
    assert [(p.name, p.kinds) for p in gain.inputs] == [("in", ("audio",))]
    assert [(p.name, p.kinds) for p in gain.outputs] == [("out", ("audio",))]
    assert types["PassThrough"].inputs[0].variadic
    assert types["PassThrough"].outputs[0].same_as_input


def test_generated_schema_matches_the_server(remote):
    """The build's node_schema.json (dumped from the registry) and the live ListNodeTypes
    are the same, field for field, for every type."""
    with Client(remote) as c:
        live = [t.to_dict() for t in c.list_node_types_sync()]
    built = [rm_nodes.schema_of(name).to_dict() for name in rm_nodes.node_types()]
    assert [t["name"] for t in built] == [t["name"] for t in live]
    for b, lv in zip(built, live):
        assert b == lv, b["name"]
    with open(rm_nodes._find_schema_file()) as f:
        raw = json.load(f)["node_types"]
    assert [NodeTypeSchema.from_dict(t).to_dict() for t in raw] == live


def test_classes_for_every_listed_type(remote):
    with Client(remote) as c:
        names = [t.name for t in arun(c.list_node_types())]
    for name in names:
        cls = getattr(rm_nodes, name)
        assert issubclass(cls, Node) and cls.node_type == name
        assert name in rm_nodes.__all__


def test_signature_and_doc():
    from remotemedia.nodes import Chunk, Gain
    sig = inspect.signature(Gain)
    assert list(sig.parameters) == ["db", "node_id", "validate"]
    assert sig.parameters["db"].default == 0
    assert sig.parameters["db"].kind == inspect.Parameter.KEYWORD_ONLY
    assert Gain.__doc__.startswith("Multiplies every sample by 10^(db/20).")
    assert "db (number; in [-120, 60]; default 0)" in Gain.__doc__
    assert "partial (enum; one of keep, pad, drop; default \"keep\")" in Chunk.__doc__
    assert repr(Gain(db=-6, node_id="g")) == "Gain(db=-6, node_id='g')"
    assert Gain(db=np.float64(-6)).params == {"db": -6.0}
    assert type(Gain(db=np.float64(-6)).params["db"]) is float


# (node type, params, the key the server and the client both name)
BAD = [
    ("Gain", {"db": 100}, "db"),
    ("Gain", {"db": "x"}, "db"),
    ("Gain", {"db": None}, "db"),
    ("Gain", {"db": float("inf")}, "db"),
    ("Gain", {"volume": 1}, "volume"),
    ("Chunk", {"frames": 1.5}, "frames"),
    ("Chunk", {"frames": 0}, "frames"),
    ("Chunk", {"frames": True}, "frames"),
    ("Chunk", {"partial": "maybe"}, "partial"),
    ("Chunk", {"partial": 1}, "partial"),
    ("AudioFormat", {}, "format"),
    ("Delay", {"ms": -1}, "ms"),
    ("ChannelMix", {"mode": "surround"}, "mode"),
]


@pytest.mark.parametrize("node_type, params, key", BAD)
def test_client_and_server_reject_the_same_params(remote, node_type, params, key):
    with pytest.raises(InvalidArgument) as client_side:
        Node(node_type, params, node_id="n")
    assert (client_side.value.node_id, client_side.value.field) == ("n", key)
    if params.get("db") == float("inf"):
        return  # not expressible in JSON: the client alone can refuse it
    with Pipeline(remote=remote) as p:
        p.add_node(Node(node_type, params, node_id="n", validate=False))
        with pytest.raises(InvalidArgument) as server_side:
            p.run_sync(np.float32([0]), sample_rate=8000)
    assert (server_side.value.node_id, server_side.value.field) == ("n", key)
    assert server_side.value.kind == "invalid_params"


def test_good_params_pass_both(remote):
    from remotemedia.nodes import Chunk
    c = Chunk(frames=2.0, partial="pad", node_id="c")
    assert c.params == {"frames": 2, "partial": "pad"}
    with Pipeline(remote=remote) as p:
        p.add_node(c)
        r = p.execute_sync(np.float32([1, 2, 3]), sample_rate=8000)
    assert [i.samples.tolist() for i in r.outputs["c"]] == [[1, 2], [3, 0]]


SYNTHETIC = {
    "name": "Every", "description": "all param types",
    "params": [
        {"name": "n", "type": "number", "has_minimum": True, "minimum": 0.5, "has_maximum": False,
         "maximum": 0, "required": False, "default_json": "1"},
        {"name": "i", "type": "integer", "has_minimum": False, "minimum": 0, "has_maximum": True,
         "maximum": 10, "required": False, "default_json": "null"},
        {"name": "b", "type": "boolean", "required": False, "default_json": "false"},
        {"name": "s", "type": "string", "required": True, "default_json": ""},
        {"name": "e", "type": "enum", "enum_values": ["x", "y"], "required": False,
         "default_json": "\"x\""},
        {"name": "a", "type": "number_array", "has_minimum": True, "minimum": -1,
         "has_maximum": True, "maximum": 1, "required": False, "default_json": "[]"},
    ],
    "inputs": [{"name": "in", "kinds": ["json"]}], "outputs": [{"name": "out", "kinds": ["json"]}],
}


def test_validation_rules_of_every_type():
    s = NodeTypeSchema.from_dict(SYNTHETIC)
    ok = s.validate_params({"n": np.float32(0.5), "i": None, "b": np.bool_(True), "s": "",
                            "e": "y", "a": np.array([-1.0, 0, 1])}, "k")
    assert ok == {"n": 0.5, "i": None, "b": True, "s": "", "e": "y", "a": [-1.0, 0.0, 1.0]}
    assert json.dumps(ok)  # plain JSON values
    assert s.validate_params({"s": "v", "i": 10.0}) == {"s": "v", "i": 10}
    cases = [
        ({}, "s", "node 'k': missing required param 's'"),
        ({"s": "v", "n": 0.25}, "n", "node 'k' param 'n': 0.25 is out of range [0.5, inf)"),
        ({"s": "v", "n": None}, "n", "node 'k' param 'n': expected number, got null"),
        ({"s": "v", "i": 11}, "i", "node 'k' param 'i': 11 is out of range (-inf, 10]"),
        ({"s": "v", "i": 2.5}, "i", "node 'k' param 'i': expected integer, got 2.5"),
        ({"s": "v", "i": 2.0 ** 60}, "i", "node 'k' param 'i': expected integer, got 1.152921504606847e+18"),
        ({"s": "v", "b": 1}, "b", "node 'k' param 'b': expected boolean, got integer"),
        ({"s": 3}, "s", "node 'k' param 's': expected string, got integer"),
        ({"s": "v", "e": "z"}, "e", "node 'k' param 'e': 'z' is not one of: x, y"),
        ({"s": "v", "e": None}, "e", "node 'k' param 'e': expected string, got null"),
        ({"s": "v", "a": [0, "1"]}, "a", "node 'k' param 'a': element 1: expected number, got string"),
        ({"s": "v", "a": [0, 2]}, "a", "node 'k' param 'a': element 1 = 2 is out of range [-1, 1]"),
        ({"s": "v", "a": 1}, "a", "node 'k' param 'a': expected number_array, got integer"),
        ({"s": "v", "z": 1}, "z", "node 'k': unknown param 'z' (Every takes: n, i, b, s, e, a)"),
    ]
    for params, key, message in cases:
        with pytest.raises(InvalidArgument) as e:
            s.validate_params(params, "k")
        assert (e.value.field, e.value.message) == (key, message)


def test_seed_alias_for_resample_rate(server_types):
    if "AudioResample" not in server_types:
        pytest.skip("the server does not list AudioResample (media nodes not built in)")
    from remotemedia.nodes import AudioResample
    assert AudioResample(target_rate=16000).params == {"rate": 16000}
    assert AudioResample(rate=16000).params == {"rate": 16000}
    with pytest.raises(TypeError, match="not both"):
        AudioResample(rate=16000, target_rate=16000)
    with pytest.raises(InvalidArgument) as e:
        AudioResample()
    assert e.value.field == "rate"


def test_refresh_follows_the_server(remote, tmp_path):
    from remotemedia.nodes import Gain
    # pretend the build knew only an older server: Gain with a narrower range, no Chunk
    old = json.loads(json.dumps({"node_types": [rm_nodes.schema_of("Gain").to_dict()]}))
    old["node_types"][0]["params"][0]["maximum"] = 6.0
    path = tmp_path / "old_schema.json"
    path.write_text(json.dumps(old))
    try:
        assert rm_nodes.load_schema(str(path)) == ["Gain"]
        with pytest.raises(InvalidArgument):
            Gain(db=12)
        with pytest.raises(AttributeError, match="no node type 'Chunk'"):
            rm_nodes.Chunk
        names = rm_nodes.refresh(remote)
        assert "Chunk" in names and "Gain" in names
        assert Gain(db=12).params == {"db": 12}  # the class imported earlier follows
        assert rm_nodes.Gain is Gain
        assert rm_nodes.Chunk(frames=4).params == {"frames": 4}
        with Client(remote) as c:
            assert arun(rm_nodes.refresh_async(c)) == names
    finally:
        rm_nodes.load_schema()
    assert rm_nodes.schema_of("Gain").param("db").maximum == 60


def test_generated_classes_match_the_live_catalog(remote):
    """The classes generated at build time (remotemedia/_node_types.py): one per ListNodeTypes
    entry, each with the typed __init__ type checkers see taking exactly that type's
    parameters, with its Python types, required ones without a default and the others with
    the server's default."""
    import ast
    from remotemedia import _node_types
    with Client(remote) as c:
        live = {t.name: t for t in c.list_node_types_sync()}
    assert sorted(_node_types.CLASSES) == sorted(live)
    with open(_node_types.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert [c.name for c in classes] == sorted(live)
    base = {"number": "float", "integer": "int", "boolean": "bool", "string": "str",
            "number_array": "Sequence[float]"}
    for cls in classes:
        schema = live[cls.name]
        assert getattr(rm_nodes, cls.name) is _node_types.CLASSES[cls.name]
        assert getattr(rm_nodes, cls.name + "Node") is _node_types.CLASSES[cls.name]
        init = next(f for f in ast.walk(cls) if isinstance(f, ast.FunctionDef)
                    and f.name == "__init__" and f.args.kwonlyargs)  # the server's spelling
        args = init.args.kwonlyargs
        assert [a.arg for a in args] == [p.name for p in schema.params] + ["node_id", "validate"]
        for a, default, p in zip(args, init.args.kw_defaults, schema.params):
            t = base.get(p.type) or "Literal[%s]" % ", ".join('"%s"' % v for v in p.enum_values)
            if p.nullable:
                t = "Optional[%s]" % t
            assert ast.unparse(a.annotation).replace("'", '"') == t, (cls.name, p.name)
            if p.required:
                assert default is None, (cls.name, p.name)
            else:
                assert ast.literal_eval(default) == p.default, (cls.name, p.name)


def test_rules_between_params_are_the_servers(remote):
    """What docs/python-client.md promises (P3): the client checks each parameter against
    the schema, but a rule relating two of them (Spectrogram's hop <= n_fft) is the
    server's, and comes back as InvalidArgument naming node and field."""
    from remotemedia.nodes import Spectrogram
    node = Spectrogram(n_fft=256, hop=512, node_id="spec")  # each value is in range
    with Pipeline(remote=remote) as p:
        p.add_node(node)
        with pytest.raises(InvalidArgument) as ei:
            p.validate_sync(np.zeros(4800, np.float32), sample_rate=48000)
    assert (ei.value.node_id, ei.value.field) == ("spec", "hop")
    assert "n_fft" in ei.value.message


@pytest.mark.parametrize("node_id", ["g\n", "\ng", "", "x" * 65])
def test_a_node_id_is_matched_whole(node_id):
    """Regression: the id check was re.match(r"^[A-Za-z0-9_-]{1,64}$"), whose $ also
    matches before a final newline, so node_id="g\\n" passed and only the server refused it."""
    with pytest.raises(ValueError, match=r"^node id %s must be 1-64 characters of "
                       r"\[A-Za-z0-9_-\]$" % re.escape(repr(node_id))):
        Node("Gain", node_id=node_id)


def test_repr_of_a_node_without_params():
    """Regression (QA 11): a node class without params printed `Gain(, node_id='g')`."""
    from remotemedia.nodes import Calculator, Gain
    assert repr(Gain(node_id="g")) == "Gain(node_id='g')"
    assert repr(Calculator(node_id="c")) == "Calculator(node_id='c')"
    assert repr(Gain()) == "Gain()"
    assert repr(Gain(db=-6)) == "Gain(db=-6)"
    assert repr(Node("Gain", node_id="g")) == "Node('Gain', {}, node_id='g')"
    assert repr(Node("Gain", {"db": -6})) == "Node('Gain', {db=-6})"
    p = Pipeline()
    p.add_node(Gain())
    assert repr(p.nodes) == "[Gain(node_id='gain')]"

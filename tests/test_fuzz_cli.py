"""Property-based fuzzing of the CLI contract on damaged input files (hypothesis).

The contract: on any input, ``trustgen.cli.main`` returns 0 or 2; on 2 it prints exactly one
line on stderr, starting with ``trustgen: error:``, without a traceback, and writes nothing
(no ``--out`` file or directory, no ``.NAME.*.tmp`` / ``.NAME.*.staging`` / lock left beside
it). Any exception escaping ``main`` is a bug. Three fuzzers drive ``main``:

1. ``test_train_on_fuzzed_csv``: the bytes of the data CSV (random bytes, or CSV text from a
   small grammar: headers with duplicate / empty / near-miss names, ragged rows, NaN / inf /
   huge / empty / quoted / very long / unicode / non-UTF-8 values, CRLF or CR line ends, a BOM,
   trailing commas), trained with a fixed valid schema.
2. ``test_train_with_fuzzed_schema``: the schema JSON (a valid schema mutated: keys dropped,
   unknown keys and typos added, values retyped to strings / booleans / null / lists / objects /
   NaN / huge or negative numbers, low > high, duplicate names, unknown source / kind / type,
   DP blocks; or raw text and bytes), trained on a fixed valid CSV.
3. ``test_sample_and_privacy_of_a_fuzzed_run``: a copy of one tiny run (trained once per module)
   with run.json's fields changed, removed or retyped, and model.pt (or train_log.jsonl,
   privacy.json, schema.json) damaged with its hash in run.json updated so the damage reaches the
   loader; then ``sample`` and ``privacy`` on it.

Seed and false failures: every test runs with ``derandomize=True`` and ``database=None``, so the
examples are the same on every run and machine (the seed is derived from the test's name); the
tests are not flaky. A failure is a real bug of the contract, and hypothesis prints the
(shrunk) falsifying example with the exception or the failed assertion. Training is tiny
(1 step, batch 2, hidden 4, latent 2; a valid example costs ~20 ms) and each fuzzer runs 400
examples, so the file takes about 30 s on two shared cores (budget: 60 s).
``pytest --hypothesis-show-statistics`` shows how many examples got through (exit 0) and the
spread of the refusals.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trustgen.cli import main
from trustgen.io import file_sha256

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TINY = ["--model", "vae", "--steps", "1", "--batch-size", "2", "--option", "hidden=4", "--option",
        "latent_dim=2", "--no-progress"]

SCHEMA = {"kind": "tabular", "source": "declared", "label": "y", "columns": [
    {"name": "a", "type": "numeric", "low": 0, "high": 10},
    {"name": "b", "type": "categorical", "categories": ["x", "y"]},
    {"name": "y", "type": "categorical", "categories": ["no", "yes"]}]}
CSV = b"a,b,y\n1,x,no\n2,y,yes\n3.5,x,no\n10,y,yes\n"


# ----------------------------------------------------------------------------- the contract

def _listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` with warnings silenced (the contract is about trustgen's own messages);
    returns its exit code and stderr. An exception escaping ``main`` propagates (a bug)."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rc = main(argv)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            e.add_note(f"BUG: {type(e).__name__} escaped trustgen.cli.main({argv!r})")
            raise
    return rc, capsys.readouterr().err


def check_exit(rc: int, err: str, tmp: Path) -> None:
    """rc in (0, 2), no traceback, and on 2 exactly one ``trustgen: error:`` line on stderr."""
    event(f"exit {rc}")  # with --hypothesis-show-statistics: how many examples got through, and why not
    event(err.replace(str(tmp), "TMP")[16:56].strip())
    assert rc in (0, 2), f"exit code {rc!r} (stderr: {err!r})"
    assert "Traceback" not in err, err
    if rc == 2:
        assert err.startswith("trustgen: error:") and err.count("\n") == 1 and err.endswith("\n"), \
            f"not exactly one 'trustgen: error:' line on stderr: {err!r}"


def check_contract(rc: int, err: str, out: Path, before: set[str], kind: str) -> None:
    """rc in (0, 2); on 2 one ``trustgen: error:`` line and nothing written beside ``out``; on 0
    the output exists (``kind``: "run" for a run directory, "file" for a file)."""
    check_exit(rc, err, out.parent)
    leftovers = sorted(n for n in _listing(out.parent) if n.startswith(f".{out.name}.")
                       and n.endswith((".tmp", ".staging", ".replaced")))
    assert not leftovers, f"temporaries left beside {out.name}: {leftovers}"
    if rc == 2:
        assert not out.exists(), f"{out} written by a command that failed: {err!r}"
        assert _listing(out.parent) == before, \
            f"a failed command wrote {sorted(_listing(out.parent) - before)}: {err!r}"
    elif kind == "run":
        assert (out / "run.json").is_file(), f"exit 0 but no {out}/run.json"
    else:
        assert out.is_file(), f"exit 0 but no {out}"


def train_files(csv: bytes, schema: bytes, capsys) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "d.csv").write_bytes(csv)
        (d / "s.json").write_bytes(schema)
        before = _listing(d)
        rc, err = run_main(["train", "--data", str(d / "d.csv"), "--schema", str(d / "s.json"), *TINY,
                            "--out", str(d / "OUT")], capsys)
        check_contract(rc, err, d / "OUT", before, "run")


# ----------------------------------------------------------------------------- 1. CSV bytes

HEADER_POOL = ["a", "b", "y", "a", "y", "", "A", "c", " a", "y ", "\ufeffa", "a.1", '"b"', "é"]
BAD_CELLS = [b"", b"NaN", b"nan", b"inf", b"-inf", b"Infinity", b"1e309", b"-1", b"11", b"10.0000001",
             b"1e400", b"0x10", b"1_0", b"true", b"None", b"NA", b"#N/A", b'"x"', b'"a,b"', b'"unterminated',
             b'""""', b'"x""y"', b"x" * 20_000, b"9" * 5000, "é".encode(), "∞".encode(), "１".encode(),
             b"\x00", b"\t", b" 1 ", b"\xff", b"\xc3(", b"caf\xe9", b"\xef\xbb\xbf", b"'", b"\\"]


def _good_cell(name: str) -> st.SearchStrategy[bytes]:
    if name == "a":
        return st.one_of(st.integers(0, 10).map(str), st.floats(0, 10).map(repr)).map(str.encode)
    if name == "b":
        return st.sampled_from([b"x", b"y"])
    if name == "y":
        return st.sampled_from([b"no", b"yes"])
    return st.sampled_from([b"1", b"x", b"no"])


BAD_CELL = st.one_of(
    st.sampled_from(BAD_CELLS),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: repr(x).encode()),
    st.integers(-10**30, 10**30).map(lambda i: str(i).encode()),
    st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.text(max_size=4).map(lambda s: ('"' + s.replace('"', '""') + '"').encode("utf-8", "surrogatepass")),
)


@st.composite
def grammar_csv(draw) -> bytes:
    if draw(st.integers(0, 2)):
        header = draw(st.permutations(["a", "b", "y"]))
    else:
        header = draw(st.lists(st.sampled_from(HEADER_POOL), min_size=1, max_size=4))
    header_line = b",".join(h.encode() for h in header)
    lines = [header_line]
    bad_rate = draw(st.sampled_from([0, 0, 8, 3]))  # one cell in bad_rate is junk (0: none)
    ragged = draw(st.integers(0, 3)) == 0
    for _ in range(draw(st.sampled_from([2, 3, 4, 0, 1, 6]))):
        width = len(header)
        if ragged:
            width = max(0, width + draw(st.sampled_from([0, 0, -1, 1, 2, -len(header)])))
        cells = []
        for i in range(width):
            name = header[i] if i < len(header) else ""
            junk = bad_rate and draw(st.integers(0, bad_rate - 1)) == 0
            cells.append(draw(BAD_CELL) if junk else draw(_good_cell(name)))
        lines.append(b",".join(cells))
    if draw(st.integers(0, 5)) == 0:
        lines = [line + b"," for line in lines]  # trailing commas
    eol = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"]))
    text = eol.join(lines) + (eol if draw(st.booleans()) else b"")
    if draw(st.integers(0, 5)) == 0:
        text = b"\xef\xbb\xbf" + text
    return text


CSV_BYTES = st.one_of(st.binary(max_size=200), grammar_csv(), grammar_csv(), grammar_csv())


@settings(FUZZ, max_examples=400)
@given(csv=CSV_BYTES)
def test_train_on_fuzzed_csv(csv, capsys):
    train_files(csv, json.dumps(SCHEMA).encode(), capsys)


# ----------------------------------------------------------------------------- 2. schema JSON

HUGE = [10**400, -10**400, 10**20, 2**63, 1e308, -1e308, 5e-324]
SCALAR = st.one_of(st.none(), st.booleans(), st.sampled_from(["", "x", "0", "1e3", "NaN", "yes", "a"]),
                   st.integers(-3, 12), st.sampled_from(HUGE),
                   st.floats(allow_nan=True, allow_infinity=True))
JUNK = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.sampled_from(["a", "name", "type", ""]),
                                                                   inner, max_size=2)), max_leaves=6)
TYPOS = ["lable", "labels", "hihg", "lo", "categores", "Type", "min", "max", "integer", "name ", "sourc", "dp",
         "kind", "columns", "low", "high", "categories", "epsilon", "mechanisms", "fixed_seed", "extra"]
CATEGORY_LISTS = [[], ["x"], ["x", "x"], [1, "1"], [1.0, 1], [True, 1], ["x", "y", "z"], ["no", "yes"],
                  ["x", None], [["x"], "y"], [{"a": 1}, "y"], ["x", float("nan")], list(range(300)), "x,y",
                  ["X", "Y"], ["", "x"], [0, 1]]


def _containers(d) -> list:
    """The JSON objects inside the schema a mutation can target."""
    out = [d] if isinstance(d, dict) else []
    if isinstance(d, dict) and isinstance(d.get("columns"), list):
        out += [c for c in d["columns"] if isinstance(c, dict)]
    if isinstance(d, dict) and isinstance(d.get("dp"), dict):
        out.append(d["dp"])
    return out


COLUMN_OPS = ["low>high", "low>high", "rename", "type", "categories", "bounds"]
TOP_OPS = ["source", "kind", "label", "label", "dp", "columns", "dup"]
ANY_OPS = ["drop", "junk", "junk", "typo"]


@st.composite
def mutated_schema(draw):
    d = copy.deepcopy(SCHEMA)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        op = draw(st.sampled_from(COLUMN_OPS + TOP_OPS + ANY_OPS))
        columns = [c for c in d.get("columns", []) if isinstance(c, dict)] if isinstance(d.get("columns"), list) else []
        if op in COLUMN_OPS:
            if not columns:
                continue
            c = draw(st.sampled_from(columns))
        elif op in TOP_OPS:
            c = d
        else:
            c = draw(st.sampled_from(_containers(d)))
        if op == "drop" and c:
            c.pop(draw(st.sampled_from(sorted(c))))
        elif op == "junk" and c:
            c[draw(st.sampled_from(sorted(c)))] = draw(JUNK)
        elif op == "typo":
            c[draw(st.sampled_from(TYPOS))] = draw(JUNK)
        elif op == "low>high":
            lo, hi = draw(st.sampled_from([(10, 0), (5, 5), (0, 0.0), (-1e308, 1e308), (1e308, -1e308),
                                           (0, 1e-300), (10**400, 0), (0, 10**400), (-3, 12), (0, 10**20)]))
            c["low"], c["high"] = lo, hi
        elif op == "bounds":
            c[draw(st.sampled_from(["low", "high"]))] = draw(st.one_of(st.sampled_from(HUGE), SCALAR))
        elif op == "dup" and columns:
            d["columns"].append(copy.deepcopy(draw(st.sampled_from(columns))))
        elif op == "rename":
            c["name"] = draw(st.sampled_from(["a", "b", "y", "", "A", "Y", "a ", "c"]))
        elif op == "type":
            c["type"] = draw(st.sampled_from(["numeric", "integer", "categorical", "float", "int", "Numeric",
                                              "string", "bool", "image", ""]))
        elif op == "source":
            c["source"] = draw(st.sampled_from(["declared", "data-derived", "dp", "trust-me", "", "DP"]))
        elif op == "kind":
            c["kind"] = draw(st.sampled_from(["tabular", "image", "audio", "Tabular", ""]))
            if c["kind"] == "image" and draw(st.booleans()):
                c.update(channels=1, height=2, width=2, low=0, high=1, classes=None)
                c.pop("columns", None), c.pop("label", None)
        elif op == "label":
            c["label"] = draw(st.sampled_from(["a", "b", "y", None, "Y", "zz", "", 1, ["y"]]))
        elif op == "categories":
            c["categories"] = copy.deepcopy(draw(st.sampled_from(CATEGORY_LISTS)))
        elif op == "dp":
            d["source"] = draw(st.sampled_from(["dp", "dp", "declared"]))
            d["dp"] = {"epsilon": draw(st.one_of(st.sampled_from([1.0, 0.5, 0, -1, 1e308]), JUNK)),
                       "mechanisms": draw(st.one_of(st.just([]), st.lists(st.fixed_dictionaries(
                           {"column": st.sampled_from(["a", "b", 3]), "mechanism": st.sampled_from(["laplace", None]),
                            "epsilon": st.one_of(st.sampled_from([0.5, 2.0, 0, -0.1]), SCALAR)}), max_size=3), JUNK)),
                       "fixed_seed": draw(st.one_of(st.booleans(), JUNK))}
        elif op == "columns":
            d["columns"] = draw(st.one_of(JUNK, st.just([]), st.just(copy.deepcopy(SCHEMA["columns"][:1]))))
    return d


@st.composite
def schema_bytes(draw) -> bytes:
    how = draw(st.integers(0, 9))
    if how == 0:
        return draw(st.binary(max_size=120))
    if how == 1:
        return draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    if how == 2:
        return json.dumps(draw(JUNK)).encode()
    text = json.dumps(draw(mutated_schema()), allow_nan=True).encode()
    if how == 3:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    elif how == 4:
        text = b"\xef\xbb\xbf" + text
    return text


@settings(FUZZ, max_examples=400)
@given(schema=schema_bytes())
def test_train_with_fuzzed_schema(schema, capsys):
    train_files(CSV, schema, capsys)


# ----------------------------------------------------------------------------- 3. run.json and files

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz_run")
    (d / "d.csv").write_bytes(CSV)
    (d / "s.json").write_text(json.dumps(SCHEMA))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "--data", str(d / "d.csv"), "--schema", str(d / "s.json"), *TINY,
                     "--out", str(d / "run")]) == 0
    return d / "run"


RUN_FIELDS = ["format", "trustgen_version", "family", "model_options", "data_spec", "sampling", "train_config",
              "label_prior", "caveats", "data", "files", "unknown_field"]
SUBKEYS = {
    "model_options": ["latent_dim", "hidden", "depth", "width", "beta", "encoder_net", "decoder_net", "steps",
                      "temperature", "sampler"],
    "data_spec": ["kind", "dim", "n_classes", "blocks", "shape", "extra"],
    "sampling": ["kind", "steps", "eta", "guidance", "deterministic", "clip", "temperature"],
    "train_config": ["epochs", "steps", "batch_size", "lr", "seed", "amp", "log_every", "device", "extra"],
    "files": ["model.pt", "schema.json", "train_log.jsonl", "privacy.json", "extra.bin"],
    "data": ["name", "sha256", "path"],
}
SPECIAL = {
    "format": [0, 1, 2, 4, "3", 3.0, 3.5, True, None, 10**400, -3],
    "family": ["gan", "diffusion", "VAE", "", "unet", 3],
    "label_prior": [[], [1.0], [0.5, 0.5, 0.0], [-1, 2], [float("nan"), 1], ["a", "b"], [1e308, 1e308], [0, 0],
                    [1, 0], [0.5, None], [[0.5], [0.5]], [10**400, 1], [float("inf"), 1]],
    "caveats": [[], [1, None], [["x"]], "caveat", [{"a": 1}]],
    "data": ["", "breast_cancer", {"name": 3, "sha256": None}, {"name": "d.csv"}, {"name": "d.csv", "sha256": "x"},
             {"name": "d.csv", "sha256": "A" * 64}, {"name": "d.csv", "sha256": None, "path": "/etc"}],
    "blocks": [[], [["numeric", 0, 1]], [["numeric", 0, 1], ["categorical", 1, 3]], [["numeric", 0]],
               [["numeric", 0, 1], ["categorical", 1, 2], ["categorical", 3, 2]], [[0, 1, 2], 5], "x",
               [["numeric", 0, 10**400], ["categorical", 1, 2]], [["numeric", -1, 1], ["categorical", 0, 2]]],
    "hash": ["0" * 64, "", "x", None, 3, "A" * 64],
}
MODEL_JUNK = st.one_of(JUNK, st.sampled_from([0, -1, 10**9, 10**12, 10**400, 2.5, 1e308, "mlp", "resnet", "unet"]))


@st.composite
def run_json_edit(draw):
    """One edit of run.json: ("set", path, value) or ("del", path)."""
    field = draw(st.sampled_from(RUN_FIELDS))
    if field in SUBKEYS and draw(st.booleans()):
        key = draw(st.sampled_from(SUBKEYS[field]))
        if field == "data_spec" and key == "blocks" and draw(st.booleans()):
            value = draw(st.sampled_from(SPECIAL["blocks"]))
        elif field == "model_options":
            value = draw(MODEL_JUNK)
        elif field == "files":
            value = draw(st.sampled_from(SPECIAL["hash"]))
        else:
            value = draw(JUNK)
        return ("del", (field, key)) if draw(st.integers(0, 3)) == 0 else ("set", (field, key), value)
    if draw(st.integers(0, 3)) == 0:
        return ("del", (field,))
    value = draw(st.sampled_from(SPECIAL[field])) if field in SPECIAL and draw(st.booleans()) else draw(JUNK)
    return ("set", (field,), value)


def _apply(meta: dict, edit) -> None:
    *parents, last = edit[1]
    target = meta
    for key in parents:
        target = target.get(key) if isinstance(target, dict) else None
    if not isinstance(target, dict):
        return
    if edit[0] == "del":
        target.pop(last, None)
    else:
        target[last] = copy.deepcopy(edit[2])


MODEL_PT = st.one_of(
    st.just(("keep",)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
    st.tuples(st.just("torch"), st.sampled_from(["tensor", "list", "empty", "wrong_shape", "extra_key", "drop_key",
                                                 "nan", "inf", "huge", "int", "float64", "half", "strings",
                                                 "nested", "scalar_tensor", "none"])),
)


def _state_variant(state: dict, how: str):
    s = {k: v.clone() for k, v in state.items()}
    first = next(iter(s))
    if how == "tensor":
        return torch.zeros(3)
    if how == "list":
        return list(s.values())
    if how == "empty":
        return {}
    if how == "wrong_shape":
        s[first] = torch.zeros(*[n + 1 for n in s[first].shape])
    elif how == "extra_key":
        s["extra.weight"] = torch.zeros(2)
    elif how == "drop_key":
        s.pop(first)
    elif how in ("nan", "inf", "huge"):
        fill = {"nan": float("nan"), "inf": float("inf"), "huge": 1e38}[how]
        s = {k: torch.full_like(v, fill) if v.is_floating_point() else v for k, v in s.items()}
    elif how == "int":
        s = {k: v.to(torch.int64) for k, v in s.items()}
    elif how == "float64":
        s = {k: v.double() for k, v in s.items()}
    elif how == "half":
        s = {k: v.half() for k, v in s.items()}
    elif how == "strings":
        s = {k: "x" for k in s}
    elif how == "nested":
        s = {"state": s}
    elif how == "scalar_tensor":
        s[first] = torch.tensor(1.0)
    elif how == "none":
        return None
    return s


def _damage_model(path: Path, how) -> None:
    data = path.read_bytes()
    if how[0] == "flip":
        i = min(len(data) - 1, int(how[1] * len(data)))
        path.write_bytes(data[:i] + bytes([data[i] ^ how[2]]) + data[i + 1:])
    elif how[0] == "truncate":
        path.write_bytes(data[: int(how[1] * len(data))])
    elif how[0] == "append":
        path.write_bytes(data + how[1])
    elif how[0] == "bytes":
        path.write_bytes(how[1])
    elif how[0] == "torch":
        torch.save(_state_variant(torch.load(path, weights_only=True), how[1]), path)


OTHER_FILE = st.one_of(
    st.just(None),
    st.tuples(st.just("train_log.jsonl"), st.sampled_from([b"", b"{", b"not json\n", b'{"step": 1}\n[1]\n', b"\xff\n",
                                                           b'{"step": NaN}\n', b"1\n"])),
    st.tuples(st.just("privacy.json"), st.sampled_from(["epsilon", "delta", "steps", "epochs", "format", "version",
                                                        "caveats", "noise_multiplier", "sample_rate", "label_budget",
                                                        "private_modules", "preprocessing_epsilon", "extra"]), JUNK),
    st.tuples(st.just("schema.json"), mutated_schema()),
)


def _damage_other(d: Path, how) -> None:
    if how is None:
        return
    if how[0] == "train_log.jsonl":
        (d / how[0]).write_bytes(how[1])
    elif how[0] == "privacy.json":
        report = json.loads((d / how[0]).read_text())
        report[how[1]] = how[2]
        (d / how[0]).write_text(json.dumps(report, allow_nan=True))
    else:
        (d / how[0]).write_text(json.dumps(how[1], allow_nan=True))


@settings(FUZZ, max_examples=400)
@given(edits=st.lists(run_json_edit(), max_size=3), model=MODEL_PT, other=OTHER_FILE,
       rehash=st.sampled_from([True, True, True, False]))
def test_sample_and_privacy_of_a_fuzzed_run(tiny_run, edits, model, other, rehash, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        run = Path(shutil.copytree(tiny_run, d / "COPY"))
        _damage_model(run / "model.pt", model)
        _damage_other(run, other)
        meta = json.loads((run / "run.json").read_text())
        for edit in edits:
            _apply(meta, edit)
        if rehash and isinstance(meta.get("files"), dict):  # the damage reaches the loader
            for name in ("model.pt", "train_log.jsonl", "privacy.json", "schema.json"):
                if name in meta["files"] and (run / name).is_file():
                    meta["files"][name] = file_sha256(run / name)
        (run / "run.json").write_text(json.dumps(meta, allow_nan=True))

        out = d / "COPY_OUT.csv"
        before = _listing(d)
        rc, err = run_main(["sample", str(run), "-n", "3", "--seed", "0", "--no-progress", "--out", str(out)], capsys)
        check_contract(rc, err, out, before, "file")
        if out.exists():
            out.unlink()
        rc, err = run_main(["privacy", str(run)], capsys)
        check_exit(rc, err, d)
        assert _listing(d) == before - {out.name}, f"privacy wrote {sorted(_listing(d) - before)}"

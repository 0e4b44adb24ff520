"""Issue 9: a command never destroys a user's files, and a user mistake is one line.

Each defect command of the issue runs in-process (``main()`` of ``heatq`` / ``heatq-export``
with ``sys.argv`` set: the same code path as the console scripts, without a torch import per
call) and must end with exit code 2, exactly one stderr line ``heatq: error: ...`` /
``heatq-export: error: ...``, no traceback, and every file and directory that existed before
byte-identical (nothing added either: no temporary directory left behind).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatq import pipeline
from heatq.errors import UserError
from heatq.ir import Op

TRAIN_TINY = ["--dataset", "digits", "--model", "mlp", "--input-code", "thermometer:3",
              "--output-code", "random:12", "--weight-bits", "3", "--act-bits", "3",
              "--epochs", "1", "--qat-epochs", "1", "-q"]
HEAT_TINY = ["--epochs", "1", "--finetune-epochs", "1", "--quench-epochs", "0",
             "--ref-epochs", "0", "--no-progress"]


@dataclass
class Result:
    rc: int
    out: str
    err: str


def invoke(prog: str, *args: str) -> Result:
    """Run ``prog`` (``heatq`` or ``heatq-export``) in this process; an exception escaping
    ``main()`` is a traceback on stderr and exit code 1, as for the console script."""
    from heatq.cli import main as heatq_main
    from heatq_export.cli import main as export_main

    main = heatq_main if prog == "heatq" else export_main
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, [prog, *map(str, args)]
    rc = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported as the console script would
                traceback.print_exc()
                rc = 1
    finally:
        sys.argv = argv
    return Result(rc, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict:
    """Every path under ``root`` (hidden ones too): files by sha256 and mode, dirs by mode."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = Path(dirpath, name)
            snap[str(p.relative_to(root))] = ("dir", p.lstat().st_mode)
        for name in filenames:
            p = Path(dirpath, name)
            snap[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                              p.lstat().st_mode)
    return snap


def assert_refused(r: Result, prog: str, *needles: str) -> None:
    """Exit 2, one stderr line ``prog: error: ...`` containing every needle, no traceback."""
    assert "Traceback" not in r.err, r.err
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert r.rc == 2, (r.rc, r.err)


@contextmanager
def unchanged(root: Path):
    """Assert that the block leaves every path under ``root`` exactly as it was."""
    before = snapshot(root)
    yield
    assert snapshot(root) == before


@pytest.fixture
def ws(tmp_path, mlp_run, monkeypatch):
    """A workspace: a copy of the trained MLP run ``run``, a user's project ``proj`` and a
    regular file ``afile``; the current directory is ``tmp_path/work`` (holding a file)."""
    shutil.copytree(mlp_run, tmp_path / "run")
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "proj" / "src" / "important.v").write_text("module important; endmodule\n")
    (tmp_path / "afile").write_text("a user's file\n")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("keep me\n")
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


@pytest.fixture(scope="module")
def c_export(mlp_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "c"
    pipeline.export_run(mlp_run, "c", out)
    return out


@pytest.fixture(scope="module")
def v_export(mlp_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "v"
    pipeline.export_run(mlp_run, "verilog", out)
    return out


# ------------------------------------------------------------------ defect 1: -o replaces
def test_export_into_a_user_project_is_refused(ws):
    with unchanged(ws):
        for force in ([], ["--force"]):
            r = invoke("heatq-export", ws / "run", "-t", "verilog", "-o", ws / "proj", *force)
            assert_refused(r, "heatq-export", "proj", "not a heatq export")


def test_export_into_its_own_run_is_refused_and_the_run_still_checks(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "run"),
                       "heatq-export", "is the input")
        assert_refused(invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "run" / "sub"),
                       "heatq-export", "inside the input")
    r = invoke("heatq", "check", ws / "run", "--n", "5", "-q")
    assert r.rc == 0, r.err


def test_train_onto_a_file_is_refused(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq", "train", "--out", ws / "afile", *TRAIN_TINY),
                       "heatq", "afile", "is a file")


def test_heat_onto_its_source_run_is_refused(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq", "heat", ws / "run", "--out", ws / "run", *HEAT_TINY),
                       "heatq", "is the input")


def test_a_heatq_output_is_replaced_only_with_force(ws):
    out = ws / "exp"
    assert invoke("heatq-export", ws / "run", "-t", "c", "-o", out).rc == 0
    shutil.copytree(ws / "run", ws / "run2")
    with unchanged(ws):
        assert_refused(invoke("heatq-export", ws / "run", "-t", "hls", "-o", out),
                       "heatq-export", "already holds a heatq export", "--force")
        # a heatq output of another kind is not replaced, even with --force
        assert_refused(invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "run2",
                              "--force"), "heatq-export", "is a heatq run, not an export")
    r = invoke("heatq-export", ws / "run", "-t", "hls", "-o", out, "--force")
    assert r.rc == 0, r.err
    assert json.loads((out / "summary.json").read_text())["target"] == "hls"
    assert not (out / "model.c").exists() and (out / "model.cpp").is_file()
    assert [p.name for p in ws.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------ defect 2: partial output on a bad option
def test_estimate_for_c_writes_nothing(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "x4",
                              "--estimate"), "heatq-export", "target c", "--estimate")
    assert not (ws / "x4").exists()


def test_an_option_of_another_target_is_one_line_naming_both(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq-export", ws / "run", "-t", "hls", "-o", ws / "x5",
                              "--max-carry", "4"), "heatq-export", "target hls", "--max-carry")
        assert_refused(invoke("heatq-export", ws / "run", "-t", "verilog", "-o", ws / "x5",
                              "--max-carry", "0"), "heatq-export", "--max-carry", ">= 1")


# ---------------------------------------------------- defect 3: tracebacks for mistakes
def test_export_into_the_current_directory_is_refused(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq-export", "../run", "-t", "c", "-o", "."),
                       "heatq-export", "current directory")


def test_export_under_a_file_is_refused(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "afile" / "sub"),
                       "heatq-export", "afile is a file")


def test_train_checks_the_output_is_writable_before_training(ws, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained before checking the output location")

    monkeypatch.setattr(pipeline, "train", no_training)
    monkeypatch.setattr(pipeline, "load_dataset", no_training)
    with unchanged(ws):
        assert_refused(invoke("heatq", "train", "--out", "/proc/x"), "heatq", "/proc/x")


def test_check_on_the_wrong_dataset_names_both_image_sizes(ws):
    with unchanged(ws):
        assert_refused(invoke("heatq", "check", ws / "run", "--dataset", "mnist5k"),
                       "heatq", "8x8", "28x28")


def test_run_target_with_a_missing_source_names_the_file(ws, c_export):
    broken = ws / "exp"
    shutil.copytree(c_export, broken)
    (broken / "model.c").unlink()
    with unchanged(ws):
        assert_refused(invoke("heatq", "run-target", broken), "heatq", "model.c", "missing")


# ------------------------------------------------------------ defect 4: --n nonsense
@pytest.mark.parametrize("args, needle", [
    (["run-target", "{export}", "--n", "-5"], "--n"),
    (["sim", "{vexport}", "--n", "-1"], "--n"),
    (["check", "{run}", "--n", "-3"], "--n"),
    (["check", "{run}", "--n", "0"], "no corner vectors"),
    (["run-target", "{export}", "--random", "-2"], "--random"),
])
def test_negative_or_meaningless_counts_are_refused(ws, c_export, v_export, args, needle):
    shutil.copytree(c_export, ws / "exp")
    shutil.copytree(v_export, ws / "vexp")
    args = [a.format(export=ws / "exp", vexport=ws / "vexp", run=ws / "run") for a in args]
    with unchanged(ws):
        assert_refused(invoke("heatq", *args), "heatq", needle)


def test_n_0_runs_the_corner_vectors_only(c_export):
    r = invoke("heatq", "run-target", c_export, "--n", "0", "-q")
    assert r.rc == 0, r.err
    run = json.loads((c_export / "run.json").read_text())
    assert run["n"] == 0 and run["n_corner"] > 0 and run["mismatches"] == 0
    assert run["accuracy"] is None


# ----------------------------------------------------------------- defect 7: the umask
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_honour_the_umask(ws, umask):
    old = os.umask(umask)
    try:
        assert invoke("heatq-export", ws / "run", "-t", "c", "-o", ws / "exp").rc == 0
    finally:
        os.umask(old)
    for p in [ws / "exp", *(ws / "exp").rglob("*")]:
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))


# --------------------------------------------- run-target / sim on any graph (issue 8.5)
def test_run_target_on_a_graph_without_a_dataset(ws, c_export):
    exp = ws / "exp"
    shutil.copytree(c_export, exp)
    doc = json.loads((exp / "model.ir.json").read_text())
    doc["meta"].pop("dataset")
    (exp / "model.ir.json").write_text(json.dumps(doc))
    with unchanged(ws):
        assert_refused(invoke("heatq", "run-target", exp), "heatq", "--dataset", "--vectors",
                       "--random")
    r = invoke("heatq", "run-target", exp, "--random", "3", "-q")
    assert r.rc == 0, r.err
    assert json.loads((exp / "run.json").read_text())["mismatches"] == 0

    shape = tuple(doc["nodes"][0]["shape"])
    good = np.ones((4, *shape), dtype=np.int64)
    np.save(ws / "good.npy", good)
    r = invoke("heatq", "run-target", exp, "--vectors", ws / "good.npy", "-q")
    assert r.rc == 0, r.err
    assert json.loads((exp / "run.json").read_text())["n_vectors"] == 4
    bad = good.copy()
    bad[2, 0, 1, 1] = 9
    np.save(ws / "bad.npy", bad)
    with unchanged(ws):
        assert_refused(invoke("heatq", "run-target", exp, "--vectors", ws / "bad.npy"),
                       "heatq", "bad.npy", "9", "[2, 0, 1, 1]")


def test_an_unsupported_op_is_refused_naming_op_and_node(mlp_run, tmp_path):
    from heatq_export.base import EmitError
    from heatq_export.c import CEmitter
    from heatq_export.export import export_graph
    from heatq.files import load_graph

    class NoDense(CEmitter):
        supported_ops = CEmitter.supported_ops - {Op.DENSE}

    graph = load_graph(mlp_run)
    with pytest.raises(EmitError, match=r"^c: op dense \(node \d+"):
        NoDense().check_graph(graph)
    import heatq_export.emitters as em

    em.EMITTERS["c-no-dense"] = NoDense
    try:
        with pytest.raises(UserError, match="op dense"):
            export_graph(graph, "c-no-dense", tmp_path / "out")
    finally:
        del em.EMITTERS["c-no-dense"]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- property test
COMMANDS = {
    "train": lambda ws, out: ("heatq", "train", "--out", out, *TRAIN_TINY),
    "heat": lambda ws, out: ("heatq", "heat", ws / "run", "--out", out, *HEAT_TINY),
    "export": lambda ws, out: ("heatq-export", ws / "run", "-t", "c", "-o", out),
    "demo": lambda ws, out: ("heatq", "demo", "--quick", "-q", "--out", out),
}
HAS_INPUT = {"heat", "export"}
names = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)


@settings(max_examples=16, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(COMMANDS)),
       case=st.sampled_from(["user_dir", "own_input", "inside_input", "file", "under_file"]),
       files=st.dictionaries(names, st.binary(max_size=64), min_size=1, max_size=4))
def test_no_command_touches_what_it_did_not_write(mlp_run, command, case, files):
    if case in ("own_input", "inside_input") and command not in HAS_INPUT:
        case = "user_dir"  # train and demo have no input directory
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        shutil.copytree(mlp_run, ws / "run")
        user = ws / "mine"
        user.mkdir()
        for name, data in files.items():
            (user / f"{name}.dat").write_bytes(data)
        (ws / "afile").write_bytes(b"".join(files.values()) or b"x")
        out = {"user_dir": user, "own_input": ws / "run", "inside_input": ws / "run" / "x",
               "file": ws / "afile", "under_file": ws / "afile" / "sub"}[case]
        prog, *args = COMMANDS[command](ws, out)
        with unchanged(ws):
            assert_refused(invoke(prog, *args), prog)


def test_sim_on_a_graph_without_a_dataset_names_the_three_ways(ws, v_export):
    exp = ws / "v"
    shutil.copytree(v_export, exp)
    doc = json.loads((exp / "model.ir.json").read_text())
    doc["meta"].pop("dataset")
    (exp / "model.ir.json").write_text(json.dumps(doc))
    with unchanged(ws):
        assert_refused(invoke("heatq", "sim", exp), "heatq", "--dataset", "--vectors",
                       "--random")
        assert_refused(invoke("heatq", "sim", exp, "--random", "2", "--n", "3"), "heatq",
                       "--random")


def test_a_failed_write_leaves_no_directory_behind(tmp_path):
    from heatq.files import atomic_dir

    with unchanged(tmp_path):
        with pytest.raises(RuntimeError):
            with atomic_dir(tmp_path / "new" / "deep" / "out") as tmp:
                (tmp / "half.txt").write_text("half")
                raise RuntimeError("interrupted")


def test_a_folder_of_runs_is_not_a_demo(ws):
    from heatq.files import output_kind

    shutil.copytree(ws / "run", ws / "runs" / "mine")
    shutil.copytree(ws / "run", ws / "heatq-out" / "run-4bit")
    assert output_kind(ws / "runs") is None and output_kind(ws / "heatq-out") == "demo"
    with unchanged(ws):
        assert_refused(invoke("heatq", "demo", "--quick", "--force", "-o", ws / "runs"),
                       "heatq", "not a heatq demo")
        assert_refused(invoke("heatq", "demo", "--quick", "-o", ws / "heatq-out"),
                       "heatq", "already holds a heatq demo", "--force")

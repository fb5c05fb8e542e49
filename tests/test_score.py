"""Batch scoring at scale: input formats, CSV/Parquet output, resume, Dask, parallel HTTP, bad files."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving import score, scoring_remote
from serving.scoring_local import LocalScorer

ROOT = Path(__file__).resolve().parents[1]
CLASSES = "gqtwz"
CHUNK = 64  # 100 held-out jets per class: two chunks per file, ten in all


@pytest.fixture(scope="module")
def models_dir(tiny_models) -> Path:
    return tiny_models


@pytest.fixture(scope="module")
def inputs(heldout_dir, tmp_path_factory) -> dict[str, Path]:
    """The held-out jets as JetNet HDF5, .npy and ragged Parquet directories (same jets, same order)."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "npy").mkdir()
    (root / "parquet").mkdir()
    for c in CLASSES:
        with h5py.File(heldout_dir / f"{c}.hdf5", "r") as f:
            x = f["particle_features"][:]
        np.save(root / "npy" / f"{c}.npy", x)
        # ragged, without the mask: only real particles, 3 features; row groups smaller than a chunk
        jets = [[p[:3].tolist() for p in jet if p[3] > 0] for jet in x]
        table = pa.table({"particles": pa.array(jets, pa.list_(pa.list_(pa.float32())))})
        pq.write_table(table, root / "parquet" / f"{c}.parquet", row_group_size=37)
    return {"hdf5": heldout_dir, "npy": root / "npy", "parquet": root / "parquet"}


def _run(args: list, models_dir: Path) -> int:
    return score.main([*map(str, args), "--model", "fcnn_tensor", "--models-dir", str(models_dir),
                       "--chunk", str(CHUNK), "--no-progress"])


def test_every_input_format_gives_the_same_probabilities(inputs, models_dir, tmp_path, capsys):
    tables = {}
    for fmt, path in inputs.items():
        assert _run([path, "--output", tmp_path / f"{fmt}.parquet"], models_dir) == 0
        tables[fmt] = pq.read_table(tmp_path / f"{fmt}.parquet")
    assert "accuracy:" in capsys.readouterr().out
    reference = tables["hdf5"]
    assert reference.num_rows == 500 and reference.column_names == [
        "index", "file", "row", "p_g", "p_q", "p_t", "p_w", "p_z", "label", "truth"]
    assert reference.column("truth").to_pylist() == [c for c in CLASSES for _ in range(100)]
    for fmt, table in tables.items():
        assert table.drop(["file"]).equals(reference.drop(["file"])), fmt  # float32, bit for bit
        assert set(table.column("file").to_pylist()) == {f"{c}.{fmt}" for c in CLASSES}
    # one file: no truth column, rows as in the directory run
    assert _run([inputs["npy"] / "t.npy", "--output", tmp_path / "t.parquet"], models_dir) == 0
    one = pq.read_table(tmp_path / "t.parquet")
    assert "truth" not in one.column_names
    np.testing.assert_array_equal(one.column("p_t").to_numpy(), reference.column("p_t").to_numpy()[200:300])


def test_csv_and_parquet_outputs_agree(inputs, models_dir, tmp_path):
    assert _run([inputs["hdf5"], "--output", tmp_path / "p.csv"], models_dir) == 0
    assert _run([inputs["hdf5"], "--output", tmp_path / "p.parquet"], models_dir) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert lines[0] == ",".join(table[0].keys()) and len(lines) == len(table) + 1 == 501
    for line, row in zip(lines[1:], table):  # the CSV is the Parquet, probabilities to 6 digits
        expected = [str(row["index"]), row["file"], str(row["row"]),
                    *(f"{np.float32(row[f'p_{c}']):.6g}" for c in CLASSES), row["label"], row["truth"]]
        assert line.split(",") == expected


class _Interrupting:
    """A real scorer that is interrupted (as by Ctrl-C) after `after` chunks, and counts what it scores."""

    def __init__(self, inner, after: int | None):
        self.inner, self.after, self.scored = inner, after, 0
        self.classes, self.identity = inner.classes, inner.identity

    def map(self, chunks):
        for probs in self.inner.map(chunks):
            if self.after is not None and self.scored == self.after:
                raise KeyboardInterrupt
            self.scored += 1
            yield probs

    def close(self):
        pass


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resume_after_an_interruption_gives_the_uninterrupted_output(inputs, models_dir, tmp_path, monkeypatch,
                                                                     suffix, capsys):
    whole, resumed = tmp_path / f"whole{suffix}", tmp_path / f"resumed{suffix}"
    assert _run([inputs["parquet"], "--output", whole], models_dir) == 0
    local = LocalScorer("fcnn_tensor", models_dir)
    first = _Interrupting(local, after=3)
    monkeypatch.setattr(score, "make_scorer", lambda args: first)
    assert _run([inputs["parquet"], "--output", resumed], models_dir) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    assert not resumed.exists()
    checkpoint = json.loads((tmp_path / f"resumed{suffix}.partial" / "checkpoint.json").read_text())
    assert checkpoint["chunks_done"] == 3 and checkpoint["jets_done"] == 64 + 36 + 64  # g.parquet, then q's first
    second = _Interrupting(local, after=None)
    monkeypatch.setattr(score, "make_scorer", lambda args: second)
    assert _run([inputs["parquet"], "--output", resumed, "--resume"], models_dir) == 0
    assert second.scored == 10 - 3  # only the chunks not done before
    assert resumed.read_bytes() == whole.read_bytes()
    assert not (tmp_path / f"resumed{suffix}.partial").exists()
    # --resume with another chunk size is refused, not mixed
    monkeypatch.setattr(score, "make_scorer", lambda args: _Interrupting(local, after=2))
    assert _run([inputs["parquet"], "--output", resumed], models_dir) == 130
    monkeypatch.undo()
    assert score.main([str(inputs["parquet"]), "--output", str(resumed), "--models-dir", str(models_dir),
                       "--chunk", "50", "--resume", "--no-progress"]) == 2
    assert "checkpoint is for another input, chunk size or model" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_the_process_is_killed(heldout_dir, models_dir, tmp_path):
    """SIGKILL in the middle of a run (maybe mid-write), then the same command with --resume."""
    with h5py.File(heldout_dir / "q.hdf5", "r") as f:
        x = f["particle_features"][:]
    big = tmp_path / "big.npy"
    np.save(big, np.tile(x, (300, 1, 1)))  # 30 000 jets, 600 chunks of 50
    command = [sys.executable, "-m", "serving.score", str(big), "--output", str(tmp_path / "killed.csv"),
               "--models-dir", str(models_dir), "--chunk", "50", "--no-progress"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "killed.csv.partial" / "checkpoint.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text())["chunks_done"] >= 20:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = json.loads(checkpoint.read_text())["chunks_done"]
    assert 20 <= done < 600 and not (tmp_path / "killed.csv").exists()
    resumed = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming: {done * 50} of 30000 jets already scored" in resumed.stderr
    assert score.main([str(big), "--output", str(tmp_path / "whole.csv"), "--models-dir", str(models_dir),
                       "--chunk", "50", "--no-progress"]) == 0
    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


@pytest.mark.slow
def test_dask_cluster_output_equals_in_process(inputs, models_dir, tmp_path):
    from distributed import Client, LocalCluster

    assert _run([inputs["hdf5"], "--output", tmp_path / "local.parquet"], models_dir) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert _run([inputs["hdf5"], "--output", tmp_path / "dask.parquet", "--scheduler",
                     cluster.scheduler_address], models_dir) == 0
        loaded = client.run(lambda: sorted(__import__("serving.scoring_dask").scoring_dask._models))
    assert (tmp_path / "dask.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    # the workers loaded the model from its folder's path; this process never did
    assert any(models == [str((models_dir / "fcnn_tensor").resolve())] for models in loaded.values()), loaded
    assert "serving.scoring_dask" not in sys.modules or not sys.modules["serving.scoring_dask"]._models
    # --scheduler local starts (and stops) its own cluster
    assert _run([inputs["npy"], "--output", tmp_path / "own.parquet", "--scheduler", "local",
                 "--workers", "2"], models_dir) == 0
    assert pq.read_table(tmp_path / "own.parquet").drop(["file"]).equals(
        pq.read_table(tmp_path / "local.parquet").drop(["file"]))


# ---- through a server: a small fake of POST /classify that really scores, in a uvicorn thread ----

class _FakeServer:
    """GET /models and POST /classify on the real model; 503s, random delays and 32-jet requests."""

    max_jets = 32

    def __init__(self, model):
        self.model, self.overloaded, self.active, self.peak, self.sizes = model, 0, 0, 0, []
        self.url = self.thread = self.server = None

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        card = self.model.card

        async def models(request):
            return JSONResponse({"models": [{"name": card.name, "version": card.version, "classes": card.classes}],
                                 "max_jets_per_request": self.max_jets})

        async def classify(request):
            body = await request.json()
            if self.overloaded:
                self.overloaded -= 1
                return JSONResponse({"error": "overloaded"}, 503, headers={"Retry-After": "7"})
            self.sizes.append(len(body["jets"]))
            if len(body["jets"]) > self.max_jets:
                return JSONResponse({"error": "too many jets"}, 413)
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                await asyncio.sleep(random.uniform(0.01, 0.08))  # answers come back out of order
                return JSONResponse(await asyncio.to_thread(self._classify, body["jets"]))
            except ValueError as e:
                return JSONResponse({"error": str(e)}, 400)
            finally:
                self.active -= 1

        return Starlette(routes=[Route("/models", models), Route("/classify", classify, methods=["POST"])])

    def _classify(self, jets):
        from serving.preprocess import jets_to_particles

        probs = self.model.predict(jets_to_particles(jets, self.model.n_particles))
        return {"model": self.model.card.name, "classes": self.model.card.classes,
                "probabilities": probs.tolist()}

    def __enter__(self):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def fake_server(models_dir):
    from serving.runtime import OnnxModel

    with _FakeServer(OnnxModel.load(models_dir / "fcnn_tensor")) as server:
        yield server


def test_parallel_http_scoring_keeps_order_and_retries_503(fake_server, inputs, models_dir, tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(scoring_remote, "_sleep", slept.append)
    fake_server.overloaded = 2
    assert _run([inputs["hdf5"], "--output", tmp_path / "local.csv"], models_dir) == 0
    assert score.main([str(inputs["hdf5"]), "--output", str(tmp_path / "remote.csv"), "--url", fake_server.url,
                       "--connections", "2", "--chunk", "50", "--no-progress"]) == 0
    assert (tmp_path / "remote.csv").read_text() == (tmp_path / "local.csv").read_text()
    assert slept == [7.0, 7.0]  # the server's Retry-After, honoured
    assert max(fake_server.sizes) <= 32 and sum(fake_server.sizes) == 500  # chunks of 50 cut to the limit
    assert fake_server.peak >= 2, "requests were never in flight together"


def test_http_errors_are_clear(fake_server, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scoring_remote, "_sleep", lambda s: None)
    x = np.load(inputs["npy"] / "w.npy")
    x[70, 0, 2] = -1.0
    np.save(tmp_path / "bad.npy", x)
    args = ["--url", fake_server.url, "--chunk", "100", "--no-progress", "--output", str(tmp_path / "out.csv")]
    assert score.main([str(tmp_path / "bad.npy"), *args]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.npy'} row 70: jet[0][2] (ptrel): ptrel must be >= 0" in err, err
    fake_server.overloaded = 100
    assert score.main([str(inputs["npy"] / "w.npy"), *args]) == 1
    assert "still overloaded (503) after 5 retries" in capsys.readouterr().err
    assert score.main([str(inputs["npy"] / "w.npy"), *args[:-2], "--model", "resnet",
                       "--output", str(tmp_path / "out.csv")]) == 2
    assert "model 'resnet' is not served" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.partial").exists()


# ---- bad files: exit status 2 and a message that names the problem, never a traceback ----

def _bad_files(d: Path) -> dict[str, tuple[Path, str]]:
    ragged = pa.list_(pa.list_(pa.float64()))
    cases = {
        "text.hdf5": "not a readable JetNet-layout HDF5 file",
        "nodataset.hdf5": "no dataset 'particle_features'",
        "shape.hdf5": "particle_features has shape (3, 30, 5), expected (N, P, 3 or 4)",
        "int.npy": "array has dtype int64, expected float32",
        "shape.npy": "array has shape (3, 30), expected (N, P, 3 or 4)",
        "truncated.npy": "not a readable .npy array",
        "pickled.npy": "not a readable .npy array",  # object arrays would need unpickling: refused
        "text.parquet": "not a readable Parquet file",
        "nocolumn.parquet": "no column 'particles'",
        "flat.parquet": "column 'particles' has type list<element: double>, expected list<list<float>>",
        "width.parquet": "row 1: jet: a particle is [etarel, phirel, ptrel]",
        "null.parquet": "row 1: jet: null instead of a list of particles",
        "negative.hdf5": "row 5: jet[3][2] (ptrel): ptrel must be >= 0",
    }
    (d / "text.hdf5").write_text("not hdf5")
    (d / "text.parquet").write_text("not parquet")
    with h5py.File(d / "nodataset.hdf5", "w") as f:
        f["jets"] = np.zeros((3, 30, 4), np.float32)
    with h5py.File(d / "shape.hdf5", "w") as f:
        f["particle_features"] = np.zeros((3, 30, 5), np.float32)
    negative = np.full((20, 30, 4), 0.5, np.float32)
    negative[5, 3, 2] = -1.0
    with h5py.File(d / "negative.hdf5", "w") as f:
        f["particle_features"] = negative
    np.save(d / "int.npy", np.ones((3, 30, 3), np.int64))
    np.save(d / "shape.npy", np.ones((3, 30), np.float32))
    np.save(d / "full.npy", np.ones((100, 30, 3), np.float32))
    (d / "truncated.npy").write_bytes((d / "full.npy").read_bytes()[:1000])
    pickled = np.empty((2, 30, 3), dtype=object)
    pickled[...] = 0.5
    np.save(d / "pickled.npy", pickled, allow_pickle=True)
    pq.write_table(pa.table({"jets": pa.array([[[0.1, 0.1, 0.5]]], ragged)}), d / "nocolumn.parquet")
    pq.write_table(pa.table({"particles": [[0.1, 0.1, 0.5]]}), d / "flat.parquet")
    pq.write_table(pa.table({"particles": pa.array([[[0.1, 0.1, 0.5]], [[0.1, 0.2]]], ragged)}), d / "width.parquet")
    pq.write_table(pa.table({"particles": pa.array([[[0.1, 0.1, 0.5]], None], ragged)}), d / "null.parquet")
    return {name: (d / name, message) for name, message in cases.items()}


def test_bad_input_files_exit_2_with_a_message(models_dir, tmp_path, capsys):
    cases = _bad_files(tmp_path)
    for name, (path, message) in cases.items():
        output = tmp_path / f"{name}.csv"
        assert _run([path, "--output", output], models_dir) == 2, name
        err = capsys.readouterr().err
        assert f"error: {path}" in err and message in err, (name, err)
        assert "Traceback" not in err and not output.exists() and not Path(f"{output}.partial").exists(), name
    # a bad output suffix fails before anything is loaded; and a missing input
    assert _run([tmp_path / "full.npy", "--output", tmp_path / "out.txt"], models_dir) == 2
    assert "must end in .csv or .parquet" in capsys.readouterr().err
    assert _run([tmp_path / "missing", "--output", tmp_path / "out.csv"], models_dir) == 2
    assert "no such file or directory" in capsys.readouterr().err

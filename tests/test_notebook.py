"""notebooks/inspect_outputs.ipynb executed top to bottom by nbclient against the tiny sample warehouse
(its paths from environment variables, as a person would set them): any cell error fails the test. The
executed notebook is kept in build/test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.support.cli import TEST_JAVA_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "inspect_outputs.ipynb"
ARTIFACTS = ROOT / "build" / "test-artifacts"


def outputs(cell: nbformat.NotebookNode) -> tuple[str, set[str]]:
    """The cell's printed and displayed text, and the MIME types it displayed."""
    text, kinds = [], set()
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out["text"])
        for kind, value in (out.get("data") or {}).items():
            kinds.add(kind)
            if kind == "text/plain":
                text.append(value)
    return "".join(text), kinds


def test_notebook_runs_against_the_sample_warehouse(sample_warehouse, monkeypatch):
    monkeypatch.setenv("ARIA_WAREHOUSE", sample_warehouse.paths.warehouse)
    monkeypatch.setenv("ARIA_WORK", sample_warehouse.paths.work)
    monkeypatch.setenv("ARIA_SPARK_MASTER", "local[1]")
    monkeypatch.delenv("ARIA_CONF", raising=False)
    monkeypatch.setenv("SPARK_SUBMIT_OPTS", TEST_JAVA_OPTIONS)  # the kernel's Spark JVM, as the session's
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, ARTIFACTS / NOTEBOOK.name)

    code = [outputs(c) for c in notebook.cells if c.cell_type == "code"]
    printed = "\n".join(text for text, _ in code)
    assert f"warehouse: {sample_warehouse.paths.warehouse}" in printed
    assert "gold/audio_vectors" in printed and "bronze/spotify_tracks" in printed  # the tables overview
    assert "version 0 against the latest, 1" in printed  # the sample warehouse wrote audio_vectors twice
    assert "audio kNN" in printed and "similarity_score" in printed
    assert any("image/png" in kinds for _, kinds in code)  # the distribution was plotted

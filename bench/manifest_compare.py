"""Compare two synthetic 5,000-node manifests (node counts, node sets, statuses, timings): time and peak memory.

Run: .venv/bin/python bench/manifest_compare.py
The JSON text is built first; the measurement covers parsing both sides' manifest and run_results and comparing.
"""

from __future__ import annotations

import json
import time
import tracemalloc

from parity import synthetic as syn
from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
from parity.compare import JobInputs, compare_job
from parity.model import RunRef
from parity.settings import ParitySettings

MODELS = 2500  # plus one test per model = 5,000 nodes per manifest


def main() -> None:
    base_manifest, base_results = syn.large_project(MODELS, database="prod")
    cand_manifest, cand_results = syn.large_project(MODELS, database="parity")
    # A few real differences so the comparison does work: one node missing, two statuses changed.
    del cand_manifest["nodes"]["model.synthetic.m02499"]
    cand_results["results"] = [r for r in cand_results["results"] if r["unique_id"] != "model.synthetic.m02499"]
    cand_results["results"][10]["status"] = "error"
    texts = [json.dumps(d) for d in (base_manifest, base_results, cand_manifest, cand_results)]
    del base_manifest, base_results, cand_manifest, cand_results
    size_mb = sum(len(t) for t in texts) / 1e6

    tracemalloc.start()
    started = time.perf_counter()
    base = RunArtifacts(
        label="b", manifest=parse_manifest(json.loads(texts[0])), run_results=parse_run_results(json.loads(texts[1]))
    )
    cand = RunArtifacts(
        label="c", manifest=parse_manifest(json.loads(texts[2])), run_results=parse_run_results(json.loads(texts[3]))
    )
    job = compare_job(
        JobInputs(
            job_id=1,
            baseline=base,
            baseline_ref=RunRef(system="files", run_id="base"),
            candidate=cand,
            candidate_ref=RunRef(system="files", run_id="cand"),
        ),
        ParitySettings(),
    )
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"nodes per manifest:  {len(base.manifest.nodes)} / {len(cand.manifest.nodes)} (JSON {size_mb:.1f} MB in total)"
    )
    print(f"time:                {elapsed:.2f} s (goal < 2 s)")
    print(f"peak memory:         {peak / 1e6:.0f} MB traced by tracemalloc (goal < 500 MB)")
    print(
        f"verdict:             {job.verdict.value}; node-set rows {len(job.node_sets)}, status rows {len(job.statuses)}"
    )


if __name__ == "__main__":
    main()

"""Evaluation throughput (images/s) on Set14 for a mid-size model (EDSR-baseline, paper config, x4): plain vs the
x8 geometric self-ensemble, through srpipe's real `evaluate` stage (metrics, cost columns and all).

Usage: python benches/bench_evaluate.py [--model edsr_baseline] [--scale 4]

Set14 comes from the shared copy beside the checkout when present (through the download stage's mirror mechanism),
else from synthetic images of Set14's sizes. Weights are random: throughput does not depend on them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import SHARED, environment, save, table
from PIL import Image

from srpipe.config import EvaluateParams
from srpipe.context import QUIET
from srpipe.models import create_model
from srpipe.stages.download import download
from srpipe.stages.evaluate import evaluate
from srpipe.weights import WeightsCard, save_weights


def set14(root: Path) -> Path:
    if (SHARED / "benchmarks" / "Set14").is_dir():
        download(["Set14"], root, mirrors=[str(SHARED / "benchmarks")], progress=False)
        return root / "Set14" / "test"
    folder = root / "Set14" / "test"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(500, 480), (720, 576), (512, 512), (352, 288), (250, 361), (276, 276), (500, 362)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr_baseline")
    ap.add_argument("--scale", type=int, default=4)
    args = ap.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        folder = set14(Path(tmp) / "raw")
        n = len(list(folder.glob("*.png")))
        weights = Path(tmp) / "w.pt"
        card = WeightsCard(model=args.model, scale=args.scale, config="paper", color="rgb")
        save_weights(weights, card, create_model(args.model, args.scale, "paper").state_dict())
        rows, records = [], []
        for ensemble in (False, True):
            params = EvaluateParams(self_ensemble=ensemble, latency_repeats=1)
            t = time.perf_counter()
            r = evaluate(args.model, args.scale, {"Set14": folder}, params, weights=weights, ctx=QUIET)
            rate = n / (time.perf_counter() - t)
            rows.append(["x8 self-ensemble" if ensemble else "plain", rate, r["latency_ms"]])
            records.append({"model": args.model, "scale": args.scale, "self_ensemble": ensemble, "images_s": rate})
    rows.append(["ratio plain / ensemble", rows[0][1] / rows[1][1], ""])
    print(f"{args.model} x{args.scale} (paper config) on Set14 ({n} images), {env['processor']}")
    print(table(["mode", "images/s", "latency ms (1 image)"], rows))
    print(f"results appended to {save('bench_evaluate', records, env)}")


if __name__ == "__main__":
    main()

"""srpipe's MATLAB-compatible `imresize` (torch) against PIL's bicubic resize: x1/4 down and x4 up, in MP/s.

Usage: python benches/bench_imresize.py [--repeats 5] [--threads N]

Rows: srpipe on uint8 (MATLAB's rounding after each pass), on float32, and on a float32 batch (one call for all the
images), each against PIL on the same uint8 images one by one. Throughput counts HR pixels (the input of the
downscale, the output of the upscale), so both directions read on the same scale. The ratio is srpipe / PIL: above
1, srpipe is faster. Images: Set14 (its varied sizes) when the shared copy exists, and 8 synthetic 512² photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _report import SHARED, best_time, environment, save, table
from PIL import Image

from srpipe.degrade import imresize


def synthetic(n: int = 8, side: int = 512) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((side, side), Image.BICUBIC)).astype(np.int16)
        out.append(np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8))
    return out


def set14() -> list[np.ndarray] | None:
    folder = SHARED / "benchmarks" / "Set14"
    if not folder.is_dir():
        return None
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(folder).glob("*.png"))]
    return [im[: im.shape[0] - im.shape[0] % 4, : im.shape[1] - im.shape[1] % 4] for im in imgs]  # modcrop 4


def _timings(src: list[np.ndarray], factor: float, repeats: int) -> tuple[float, dict[str, float]]:
    """(PIL seconds, {srpipe case: seconds}) to resize every image of `src` by `factor`."""
    pils = [Image.fromarray(im) for im in src]
    sizes = [_size(im, factor) for im in src]
    u8 = [torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous() for im in src]
    f32 = [t.float() / 255 for t in u8]
    t_pil = best_time(lambda: [p.resize(size, Image.BICUBIC) for p, size in zip(pils, sizes)], repeats)
    cases = {
        "uint8": lambda: [imresize(t, factor) for t in u8],
        "float32": lambda: [imresize(t, factor) for t in f32],
    }
    if len({t.shape for t in u8}) == 1:
        batch = torch.stack(f32)
        cases["float32 batch"] = lambda: imresize(batch, factor)
    return t_pil, {case: best_time(fn, repeats) for case, fn in cases.items()}


def run(name: str, imgs: list[np.ndarray], repeats: int) -> list[dict]:
    records = []
    hr_mp = sum(im.shape[0] * im.shape[1] for im in imgs) / 1e6
    small = [np.asarray(Image.fromarray(im).resize(_size(im, 0.25), Image.BICUBIC)) for im in imgs]
    # Inputs of each direction: the HR images for the downscale, their x1/4 versions for the upscale.
    for direction, src, factor in (("down x1/4", imgs, 0.25), ("up x4", small, 4.0)):
        t_pil, ours = _timings(src, factor, repeats)
        for case, t in ours.items():
            records.append(
                {
                    "images": name,
                    "direction": direction,
                    "srpipe": case,
                    "srpipe_mp_s": hr_mp / t,
                    "pil_mp_s": hr_mp / t_pil,
                    "ratio": t_pil / t,
                }
            )
    return records


def _size(im: np.ndarray, factor: float) -> tuple[int, int]:
    return round(im.shape[1] * factor), round(im.shape[0] * factor)  # PIL wants (width, height)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    sets = {"synthetic 8x512²": synthetic()}
    real = set14()
    if real is None:
        print(f"(no Set14 at {SHARED / 'benchmarks' / 'Set14'}: synthetic images only)")
    else:
        sets["Set14"] = real
    records = [r for name, imgs in sets.items() for r in run(name, imgs, args.repeats)]
    rows = [
        [r["images"], r["direction"], r["srpipe"], r["srpipe_mp_s"], r["pil_mp_s"], f"{r['ratio']:.2f}x"]
        for r in records
    ]
    threads = env["torch_threads"]
    print(f"imresize, HR megapixels/s (best of {args.repeats}); {env['cpus']} CPUs, torch {threads} threads")
    print(table(["images", "direction", "srpipe input", "srpipe MP/s", "PIL MP/s", "srpipe/PIL"], rows))
    print(f"results appended to {save('imresize', records, env)}")


if __name__ == "__main__":
    main()

"""srpipe's PSNR/SSIM (torch, float64) against scikit-image's on the same Y images, in images/s.

Usage: python benches/bench_metrics.py [--repeats 3] [--threads N]

Pairs: HR luma vs the luma of its MATLAB-bicubic x4 round trip, for Set5 + Set14 when the shared copy exists (their
varied sizes) and for 16 synthetic 256² photos (one size, so srpipe can also score them as one batch). scikit-image is
configured as the SR papers' SSIM: gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255;
no border crop on either side, so the two compute the same numbers (their largest difference is printed). The ratio
is srpipe / scikit-image: above 1, srpipe is faster.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _report import SHARED, best_time, environment, save, table
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from srpipe.degrade import bicubic_lr, bicubic_up
from srpipe.metrics import psnr, rgb_to_y, ssim


def _y(img: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → H×W float64 BT.601 luma in [16, 235], as both libraries score it."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].double()
    return rgb_to_y(t)[0, 0].numpy()


def pairs_from(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for img in images:
        hr, lr = bicubic_lr(img, 4)
        out.append((_y(hr), _y(bicubic_up(lr, 4))))
    return out


def synthetic(n: int = 16, side: int = 256) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        imgs.append(np.asarray(Image.fromarray(coarse).resize((side, side), Image.BICUBIC)))
    return imgs


def benchmark_images() -> list[np.ndarray] | None:
    folders = [SHARED / "benchmarks" / s for s in ("Set5", "Set14")]
    if not all(f.is_dir() for f in folders):
        return None
    return [np.asarray(Image.open(p).convert("RGB")) for f in folders for p in sorted(f.glob("*.png"))]


def run(name: str, pairs: list[tuple[np.ndarray, np.ndarray]], repeats: int) -> list[dict]:
    n = len(pairs)
    tensors = [(torch.from_numpy(hr)[None, None], torch.from_numpy(sr)[None, None]) for hr, sr in pairs]

    def sk_psnr() -> list[float]:
        return [peak_signal_noise_ratio(hr, sr, data_range=255) for hr, sr in pairs]

    def sk_ssim() -> list[float]:
        kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
        return [structural_similarity(hr, sr, **kw) for hr, sr in pairs]

    def sr_psnr() -> list[float]:
        return [psnr(sr, hr, crop_border=0).item() for hr, sr in tensors]

    def sr_ssim() -> list[float]:
        return [ssim(sr, hr, crop_border=0).item() for hr, sr in tensors]

    cases = {"PSNR": (sr_psnr, sk_psnr), "SSIM": (sr_ssim, sk_ssim)}
    if len({hr.shape for hr, _ in pairs}) == 1:
        hr_b = torch.cat([hr for hr, _ in tensors])
        sr_b = torch.cat([sr for _, sr in tensors])
        cases["PSNR batch"] = (lambda: psnr(sr_b, hr_b, crop_border=0).tolist(), sk_psnr)
        cases["SSIM batch"] = (lambda: ssim(sr_b, hr_b, crop_border=0).tolist(), sk_ssim)
    records = []
    for metric, (ours, theirs) in cases.items():
        diff = float(np.max(np.abs(np.array(ours()) - np.array(theirs()))))
        t_ours, t_theirs = best_time(ours, repeats), best_time(theirs, repeats)
        records.append(
            {
                "images": f"{name} ({n})",
                "metric": metric,
                "srpipe_img_s": n / t_ours,
                "skimage_img_s": n / t_theirs,
                "ratio": t_theirs / t_ours,
                "max_abs_diff": diff,
            }
        )
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    sets = {"synthetic 256²": pairs_from(synthetic())}
    real = benchmark_images()
    if real is None:
        print(f"(no Set5/Set14 under {SHARED / 'benchmarks'}: synthetic images only)")
    else:
        sets["Set5+Set14"] = pairs_from(real)
    records = [r for name, pairs in sets.items() for r in run(name, pairs, args.repeats)]
    rows = [
        [
            r["images"],
            r["metric"],
            r["srpipe_img_s"],
            r["skimage_img_s"],
            f"{r['ratio']:.2f}x",
            f"{r['max_abs_diff']:.0e}",
        ]
        for r in records
    ]
    print(f"metrics on Y, images/s (best of {args.repeats}); {env['cpus']} CPUs, torch {env['torch_threads']} threads")
    print(table(["images", "metric", "srpipe img/s", "skimage img/s", "srpipe/skimage", "max |diff|"], rows))
    print(f"results appended to {save('metrics', records, env)}")


if __name__ == "__main__":
    main()

"""Released weights: converters on synthetic files in the authors' layouts, refusals, the catalog, the real files."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from srpipe.context import QUIET, Context
from srpipe.leaderboard.published import lookup
from srpipe.models import create_model, get_config
from srpipe.released import FORMATS, ConversionError, convert_file, detect_format, load_released
from srpipe.stages.import_weights import import_released, import_weights
from srpipe.weights import load_model, read_card

from .conftest import SHARED

WEIGHTS_ENV = "SRPIPE_RELEASED_DIR"  # a folder laid out like ../shared/weights (SRCNN/, VDSR/, LapSRN/)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ---- writers in the authors' layouts (the inverse of srpipe/released.py's tables, written independently) -----------


def _srcnn_mat(path: Path, sd: dict[str, torch.Tensor]) -> None:
    w1, w2, w3 = (_np(sd[k]) for k in ("body.0.weight", "body.2.weight", "reconstruct.weight"))
    k1, k2, k3 = w1.shape[-1], w2.shape[-1], w3.shape[-1]
    scipy.io.savemat(
        path,
        {
            # MATLAB reshape is column-major: entry r + k·c of a flattened kernel is row r, column c
            "weights_conv1": w1[:, 0].transpose(1, 2, 0).reshape(k1 * k1, -1, order="F"),
            "biases_conv1": _np(sd["body.0.bias"])[:, None],
            "weights_conv2": w2.transpose(1, 2, 3, 0).reshape(w2.shape[1], k2 * k2, -1, order="F"),
            "biases_conv2": _np(sd["body.2.bias"])[:, None],
            "weights_conv3": w3[0].reshape(w3.shape[1], k3 * k3, order="F"),
            "biases_conv3": _np(sd["reconstruct.bias"])[:, None],
        },
    )


def _cells(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        out[0, i] = a
    return out


def _vdsr_mat(path: Path, sd: dict[str, torch.Tensor], depth: int) -> None:
    ws = [_np(sd[f"body.{2 * i}.weight"]).transpose(2, 3, 1, 0) for i in range(depth)]  # H×W×Cin×Cout
    bs = [_np(sd[f"body.{2 * i}.bias"])[:, None] for i in range(depth)]
    scipy.io.savemat(path, {"model": {"weight": _cells(ws), "bias": _cells(bs)}})


def _lapsrn_mat(path: Path, sd: dict[str, torch.Tensor], levels: int, depth: int) -> None:
    params = [
        ("input_conv_f", _np(sd["head.0.weight"]).transpose(2, 3, 1, 0)),
        ("input_conv_b", _np(sd["head.0.bias"])),
    ]
    for lv in range(levels):  # the authors number levels from the output: level1 is the last
        p, n = f"feature_levels.{lv}", levels - lv
        for j in range(depth):
            params += [(f"level{n}_conv{j + 1}_f", _np(sd[f"{p}.{2 * j}.weight"]).transpose(2, 3, 1, 0))]
            params += [(f"level{n}_conv{j + 1}_b", _np(sd[f"{p}.{2 * j}.bias"]))]
        # ConvTranspose2d stores (Cin, Cout, H, W); MatConvNet convt filters are H×W×Cout×Cin
        params += [(f"level{n}_upconv_f", _np(sd[f"{p}.{2 * depth}.weight"]).transpose(2, 3, 1, 0))]
        params += [(f"level{n}_upconv_b", _np(sd[f"{p}.{2 * depth}.bias"]))]
        params += [(f"level{n}_residual_conv_f", _np(sd[f"residuals.{lv}.weight"]).transpose(2, 3, 1, 0)[..., 0])]
        params += [(f"level{n}_residual_conv_b", _np(sd[f"residuals.{lv}.bias"]))]
        params += [(f"level{n}_img_up_f", _np(sd[f"image_ups.{lv}.weight"])[0, 0])]
    table = np.empty((1, len(params)), dtype=[("name", object), ("value", object)])
    for i, (n, v) in enumerate(params):
        table[0, i] = (n, v)
    scipy.io.savemat(path, {"net": {"params": table, "layers": np.zeros((1, 0))}})


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), msg=k)


# ---- round trips per format -------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["paper", "9-3-5", "9-1-5"])
def test_srcnn_mat_round_trip(tmp_path, config):
    sd = create_model("srcnn", 3, config, channels=1).state_dict()
    _srcnn_mat(tmp_path / "x3.mat", sd)
    assert detect_format(tmp_path / "x3.mat") == "srcnn-mat"
    got, fmt = convert_file(tmp_path / "x3.mat", "srcnn", 3, config)
    assert fmt == "srcnn-mat"
    _assert_same(got, sd)


def test_srcnn_layout_matches_imfilter_semantics():
    """The converted first layer computes what SRCNN.m's imfilter(im, reshape(w(:, i), 9, 9)) computes."""
    from srpipe.released import to_tensor

    rng = np.random.default_rng(0)
    w = rng.normal(size=(81, 2))  # weights_conv1 as the authors store it
    img = rng.normal(size=(15, 17))
    kernel0 = w[:, 0].reshape(9, 9, order="F")  # MATLAB reshape
    padded = np.pad(img, 4, mode="edge")
    # imfilter is correlation: out(y, x) = sum_{r,c} K(r, c) · in(y + r - 4, x + c - 4)
    expected = np.array([[(kernel0 * padded[y : y + 9, x : x + 9]).sum() for x in range(17)] for y in range(15)])
    t = to_tensor(w, "K,O", "conv")
    got = F.conv2d(F.pad(torch.from_numpy(img)[None, None].float(), (4, 4, 4, 4), mode="replicate"), t)
    np.testing.assert_allclose(got[0, 0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_vdsr_mat_round_trip(tmp_path):
    sd = create_model("vdsr", 2, "tiny", channels=1).state_dict()
    _vdsr_mat(tmp_path / "vdsr.mat", sd, get_config("vdsr", "tiny").depth)
    assert detect_format(tmp_path / "vdsr.mat") == "vdsr-mat"
    _assert_same(convert_file(tmp_path / "vdsr.mat", "vdsr", 2, "tiny")[0], sd)


@pytest.mark.parametrize("scale", [2, 4])
def test_lapsrn_dagnn_round_trip(tmp_path, scale):
    sd = create_model("lapsrn", scale, "paper", channels=1).state_dict()
    _lapsrn_mat(tmp_path / "lapsrn.mat", sd, levels=scale // 2, depth=10)
    assert detect_format(tmp_path / "lapsrn.mat") == "lapsrn-dagnn"
    _assert_same(convert_file(tmp_path / "lapsrn.mat", "lapsrn", scale)[0], sd)


def _matconvnet_convt(x: np.ndarray, f: np.ndarray, up: int, crop: tuple[int, int]) -> np.ndarray:
    """1-channel MatConvNet vl_nnconvt along both axes: full transposed conv, then crop (top, bottom) per axis."""
    k = f.shape[0]
    h, w = x.shape
    full = np.zeros(((h - 1) * up + k, (w - 1) * up + k))
    for i in range(h):
        for j in range(w):
            full[i * up : i * up + k, j * up : j * up + k] += x[i, j] * f
    return full[crop[0] : full.shape[0] - crop[1], crop[0] : full.shape[1] - crop[1]]


@pytest.mark.parametrize(("kernel", "crop"), [(3, (0, 1)), (4, (1, 1))])
def test_lapsrn_upsamplers_sit_where_matconvnet_convt_puts_them(kernel, crop):
    """The feature up-sampler (3×3, crop [0 1 0 1]) and a 4×4 one (crop [1 1 1 1]) as in the released .mat files."""
    net = create_model("lapsrn", 2, "paper", channels=1, features=1, depth=1, up_kernel=kernel)
    up = net.feature_levels[0][2]
    rng = np.random.default_rng(1)
    f = rng.normal(size=(kernel, kernel))
    x = rng.normal(size=(6, 7))
    with torch.no_grad():
        up.weight.copy_(torch.from_numpy(f)[None, None])
        up.bias.zero_()
        got = up(torch.from_numpy(x)[None, None].float())[0, 0].numpy()
    np.testing.assert_allclose(got, _matconvnet_convt(x, f, 2, crop), rtol=1e-5, atol=1e-5)


def _fsrcnn_deconv_m(x: np.ndarray, f: np.ndarray, s: int) -> np.ndarray:
    """The authors' FSRCNN deconv.m without its 1-pixel replicate border: kernel for LR pixel i at HR rows
    s·i … s·i + 8 of the full output, which is then cropped from row (9+1)/2 - 1 to s·H rows."""
    h, w = x.shape
    full = np.zeros(((h - 1) * s + 9, (w - 1) * s + 9))
    for i in range(h):
        for j in range(w):
            full[i * s : i * s + 9, j * s : j * s + 9] += x[i, j] * f
    return full[4 : 4 + h * s, 4 : 4 + w * s]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_deconvolution_follows_the_authors_test_code(scale):
    net = create_model("fsrcnn", scale, "paper", channels=1, features=1)
    rng = np.random.default_rng(scale)
    f, x = rng.normal(size=(9, 9)), rng.normal(size=(5, 6))
    with torch.no_grad():
        net.deconv.weight.copy_(torch.from_numpy(f)[None, None])
        net.deconv.bias.zero_()
        got = net.deconv(torch.from_numpy(x)[None, None].float())[0, 0].numpy()
    np.testing.assert_allclose(got, _fsrcnn_deconv_m(x, f, scale), rtol=1e-5, atol=1e-5)


def _official_names(sd: dict[str, torch.Tensor], model: str, scale: int) -> dict[str, torch.Tensor]:
    """srpipe's state dict renamed and rescaled to the EDSR-PyTorch layout ([0, 255] network)."""
    out = {"sub_mean.weight": torch.eye(3)[..., None, None], "sub_mean.bias": torch.zeros(3)}
    up = {"tail.0.0": "UPNet.0", "tail.0.2": "UPNet.2", "tail.1": "UPNet.4" if scale == 4 else "UPNet.2"}
    for k, v in sd.items():
        n = k
        for a, b in [("gate.1", "conv_du.0"), ("gate.3", "conv_du.2"), ("sfe1", "SFENet1"), ("sfe2", "SFENet2")]:
            n = n.replace(a, b)
        n = n.replace("global_fusion", "GFF").replace(".fusion.", ".LFF.").replace("blocks.", "RDBs.")
        n = n.replace(".dense.", ".convs.").replace("head.", "head.0.") if model != "rdn" else n
        if model == "rdn":
            n = n.replace("blocks.", "RDBs.").replace(".dense.", ".convs.").replace(".fusion.", ".LFF.")
            n = ".".join(n.split(".")[:4]) + ".conv.0." + n.split(".")[-1] if ".convs." in n else n
            n = next((n.replace(a, b) for a, b in up.items() if n.startswith(a + ".")), n)
        if "conv_du.0.weight" in n:
            v = v / 255  # the sigmoid sees a pooled [0, 255] feature
        elif n.endswith("bias") and "conv_du" not in n:
            v = v * 255
        out[n] = v
    return out


@pytest.mark.parametrize(("model", "scale"), [("edsr_baseline", 2), ("edsr", 4), ("rcan", 3), ("rdn", 2), ("rdn", 4)])
@pytest.mark.parametrize("wrapper", [None, "params_ema", "state_dict"])
def test_edsr_pytorch_family_round_trip(tmp_path, model, scale, wrapper):
    sd = create_model(model, scale, "tiny").state_dict()
    official = _official_names(sd, model, scale)
    if wrapper == "params_ema":  # BasicSR: the EMA model, keys with DataParallel's prefix
        blob = {"params": {}, "params_ema": {f"module.{k}": v for k, v in official.items()}}
    elif wrapper == "state_dict":  # mmagic / Lightning
        blob = {"meta": {"epoch": 3}, "state_dict": {f"generator.{k}": v for k, v in official.items()}}
    else:
        blob = official
    torch.save(blob, tmp_path / "model.pt")
    got, fmt = convert_file(tmp_path / "model.pt", model, scale, "tiny")
    assert fmt == "edsr-pytorch"
    _assert_same(got, sd)


def test_rgb_range_rescaling_is_exact_for_edsr():
    """A [0, 255] EDSR (biases ×255) on 255·x equals 255 × srpipe's converted EDSR on x, away from nothing."""
    net = create_model("edsr_baseline", 2, "tiny").eval()
    for m in net.modules():  # non-zero biases, so a missing rescale would show
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.bias, std=0.05)
    big = create_model("edsr_baseline", 2, "tiny").eval()
    big.load_state_dict({k: v * 255 if k.endswith("bias") else v for k, v in net.state_dict().items()})
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        # srpipe's MeanShift works in [0, 1]: scale it too, as EDSR-PyTorch's MeanShift uses rgb_range · mean
        big.sub_mean.shift.mul_(255)
        big.add_mean.shift.mul_(255)
        torch.testing.assert_close(big(x * 255), net(x) * 255, rtol=1e-4, atol=1e-3)


# ---- refusals -----------------------------------------------------------------------------------------------------


def test_a_mismatched_file_names_the_tensor_and_both_shapes(tmp_path):
    _srcnn_mat(tmp_path / "x2.mat", create_model("srcnn", 2, "paper", channels=1).state_dict())
    with pytest.raises(ConversionError, match=r"weights_conv2.*\(32, 64, 5, 5\).*\(32, 64, 1, 1\)"):
        convert_file(tmp_path / "x2.mat", "srcnn", 2, "9-1-5")


def test_a_file_missing_tensors_is_refused(tmp_path):
    sd = create_model("vdsr", 2, "tiny", channels=1).state_dict()
    _vdsr_mat(tmp_path / "vdsr.mat", sd, 3)  # one layer short
    with pytest.raises(ConversionError, match=r"no tensor for srpipe's 'body.6.weight'"):
        convert_file(tmp_path / "vdsr.mat", "vdsr", 2, "tiny")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_pickled_program_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save({"head.0.weight": torch.zeros(1), "payload": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ConversionError, match=r"state_dict\(\)"):
        convert_file(tmp_path / "evil.pth", "edsr_baseline", 2, "tiny")
    assert not marker.exists()


def test_a_pickled_whole_model_is_refused_with_how_to_export(tmp_path):
    torch.save(create_model("edsr_baseline", 2, "tiny"), tmp_path / "whole.pth")
    with pytest.raises(ConversionError, match=r"pickled model.*torch.save\(model.state_dict\(\)"):
        convert_file(tmp_path / "whole.pth", "edsr_baseline", 2, "tiny")


# ---- the weights file and the catalog -------------------------------------------------------------------------------


def test_import_writes_a_card_with_provenance(tmp_path):
    sd = create_model("srcnn", 2, "9-1-5", channels=1).state_dict()
    _srcnn_mat(tmp_path / "x2.mat", sd)
    import_weights(tmp_path / "x2.mat", "srcnn", 2, tmp_path / "out.pt", None, "9-1-5", source="repo@abc", variant="V")
    net, card = load_model(tmp_path / "out.pt", "srcnn", 2)
    assert (card.origin, card.config, card.color, card.source, card.variant) == (
        "released",
        "9-1-5",
        "y",
        "repo@abc",
        "V",
    )
    assert len(card.source_sha256) == 64
    _assert_same(net.state_dict(), sd)


def test_old_weights_files_read_as_trained_here(tmp_path):
    card = {"model": "srcnn", "scale": 2, "config": "tiny", "color": "rgb"}  # a card written before provenance
    sd = create_model("srcnn", 2, "tiny").state_dict()
    torch.save({"format": "srpipe-weights/1", "card": card, "state_dict": sd}, tmp_path / "old.pt")
    assert read_card(tmp_path / "old.pt")[0].origin == "trained here"


def test_catalog_entries_are_consistent():
    entries, unavailable = load_released()
    assert {"srcnn", "vdsr", "lapsrn"} <= {e.model for e in entries.values()}
    assert {"edsr", "rcan", "rdn"} <= set(unavailable)
    for e in entries.values():
        assert e.format in FORMATS and e.checksum and e.urls, e.name
        create_model(e.model, e.scale, e.config, channels=1)  # the config exists at that scale
        for dataset, pub in e.published.items():
            fig = lookup(e.model, e.scale, dataset)  # the catalog repeats the published table, never contradicts it
            assert fig is not None and (fig.psnr, fig.ssim) == (pub.psnr, pub.ssim), (e.name, dataset)


def test_released_fetch_goes_through_mirrors_and_verifies(tmp_path, monkeypatch):
    from srpipe.stages.import_weights import WeightsUnavailableError

    monkeypatch.delenv("SRPIPE_MIRRORS", raising=False)
    entry = load_released()[0]["srcnn_955_imagenet_x2"]
    offline = dataclasses.replace(entry, urls=((tmp_path / "no-server").as_uri() + "/x2.mat",))  # never the network
    monkeypatch.setattr("srpipe.stages.import_weights.get_released", lambda name: offline)
    bad = tmp_path / "mirror" / entry.folder
    bad.mkdir(parents=True)
    (bad / entry.file).write_bytes(b"not the file")
    with pytest.raises(WeightsUnavailableError, match=r"(?s)12 bytes, expected 268933.*--mirror"):
        import_released(entry.name, tmp_path / "out", tmp_path / "cache", [str(tmp_path / "mirror")])
    assert (bad / entry.file).exists()  # a mirror's file is never deleted
    good = tmp_path / "good"  # a verified copy in a flat mirror folder is converted
    good.mkdir()
    sd = create_model("srcnn", 2, "paper", channels=1).state_dict()
    _srcnn_mat(good / entry.file, sd)
    real = dataclasses.replace(offline, size=(good / entry.file).stat().st_size, checksum=None)
    monkeypatch.setattr("srpipe.stages.import_weights.get_released", lambda name: real)
    out = import_released(entry.name, tmp_path / "out", tmp_path / "cache", [str(good)], progress=False)
    _assert_same(load_model(out, "srcnn", 2)[0].state_dict(), sd)


# ---- the real files --------------------------------------------------------------------------------------------------


def _weights_dir() -> Path:
    folder = Path(os.environ.get(WEIGHTS_ENV) or SHARED / "weights")
    if not (folder / "SRCNN").is_dir():
        pytest.skip(f"released weights not found at {folder} (set {WEIGHTS_ENV} to a copy of ../shared/weights)")
    return folder


@pytest.mark.parametrize("name", sorted(load_released()[0]))
def test_real_released_files_convert(tmp_path, name):
    folder = _weights_dir()
    out = import_released(name, tmp_path, tmp_path / "cache", [str(folder)], progress=False)
    card = read_card(out)[0]
    assert card.origin == "released" and "sha256:" + card.source_sha256 == load_released()[0][name].checksum


@pytest.mark.parametrize(
    ("name", "protocol"),
    [
        ("srcnn_955_imagenet_x3", "y-matlab"),
        ("lapsrn_x2", "rgb-float"),
        ("lapsrn_x4", "rgb-float"),
        ("vdsr_x3", "y-matlab"),
    ],
)
def test_real_released_weights_beat_bicubic_on_one_image(tmp_path, name, protocol):
    from srpipe.config import EvaluateParams
    from srpipe.stages.evaluate import evaluate

    folder, hr = _weights_dir(), SHARED / "benchmarks" / "Set5"
    if not (hr / "head.png").is_file():
        pytest.skip(f"{hr / 'head.png'} not found")
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "head.png").write_bytes((hr / "head.png").read_bytes())
    spec = load_released()[0][name]
    weights = import_released(name, tmp_path, tmp_path / "cache", [str(folder)], progress=False)
    kw = {"ctx": Context(device="cpu", progress=False)}
    ev = EvaluateParams(latency_repeats=1)
    theirs = dataclasses.replace(ev, protocol=protocol)
    net = evaluate(spec.model, spec.scale, {"head": tmp_path / "hr"}, theirs, weights, **kw)
    base = evaluate("bicubic", spec.scale, {"head": tmp_path / "hr"}, ev, **kw)
    assert net["psnr"] > base["psnr"] + 0.3  # a one-pixel shift or a transposed kernel lands below bicubic


@pytest.mark.parametrize("name", ["vdsr_x4", "lapsrn_x2"])  # the two furthest from fp32 with every conv in bf16
def test_bf16_inference_scores_as_fp32_with_the_authors_weights(tmp_path, name):
    """Issue 15's bar: `precision: auto` (bf16 on a CPU with native bf16, image convolutions pinned to fp32) within
    0.01 dB and 0.001 SSIM of fp32 on Set5. All-bf16 missed it by 0.15 dB (VDSR x4) and 0.05 dB (LapSRN x2)."""
    from srpipe.config import EvaluateParams
    from srpipe.runtime import amp_dtype
    from srpipe.stages.evaluate import evaluate

    if amp_dtype(torch.device("cpu"), "auto") is None:
        pytest.skip("this CPU has no native bf16: precision auto runs fp32")
    folder, hr = _weights_dir(), SHARED / "benchmarks" / "Set5"
    if not hr.is_dir():
        pytest.skip(f"{hr} not found")
    spec = load_released()[0][name]
    weights = import_released(name, tmp_path, tmp_path / "cache", [str(folder)], progress=False)
    scores = {}
    for precision in ("fp32", "auto"):
        ev = EvaluateParams(latency_repeats=1, protocol=spec.protocol, precision=precision)
        scores[precision] = evaluate(spec.model, spec.scale, {"Set5": hr}, ev, weights, ctx=QUIET)
    assert scores["auto"]["precision"] == "bf16" and scores["fp32"]["precision"] == "fp32"
    assert abs(scores["auto"]["psnr"] - scores["fp32"]["psnr"]) <= 0.01
    assert abs(scores["auto"]["ssim"] - scores["fp32"]["ssim"]) <= 0.001


REPRODUCE_ENV = "SRPIPE_REPRODUCE"
TARGETS = [
    "srcnn_955_imagenet_x2",
    "srcnn_955_imagenet_x3",
    "srcnn_955_imagenet_x4",
    "vdsr_x2",
    "vdsr_x3",
    "vdsr_x4",
    "lapsrn_x2",
    "lapsrn_x4",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGETS)
def test_released_weights_reproduce_the_papers_tables(tmp_path, name):
    """Set5/Set14 within 0.05 dB and 0.002 SSIM of each paper's table, under the paper's own test protocol.

    Minutes per entry on a CPU, so it runs only with SRPIPE_REPRODUCE=1 (the default suite runs `slow` tests).
    """
    if os.environ.get(REPRODUCE_ENV, "") in ("", "0"):
        pytest.skip(f"set {REPRODUCE_ENV}=1 to run the reproduction (minutes per model on a CPU)")
    from srpipe.config import EvaluateParams
    from srpipe.stages.evaluate import evaluate

    folder, bench = _weights_dir(), SHARED / "benchmarks"
    spec = load_released()[0][name]
    sets = {d: bench / d for d in spec.published if (bench / d).is_dir()}
    if not sets:
        pytest.skip(f"no benchmark folders {sorted(spec.published)} under {bench}")
    weights = import_released(name, tmp_path, tmp_path / "cache", [str(folder)], progress=False)
    ev = EvaluateParams(latency_repeats=1, protocol=spec.protocol)
    got = evaluate(spec.model, spec.scale, sets, ev, weights, ctx=QUIET)
    for dataset, pub in spec.published.items():
        if dataset in got["datasets"]:
            d = got["datasets"][dataset]
            assert abs(d["psnr"] - pub.psnr) <= 0.05, (dataset, d["psnr"], pub.psnr)
            assert abs(d["ssim"] - pub.ssim) <= 0.002, (dataset, d["ssim"], pub.ssim)

"""Released weights: the authors' checkpoints converted into srpipe weights files, and the catalog that lists them.

Each source format is a table (`FORMATS`): a reader that flattens the file into named arrays, then rules mapping each
source name to an srpipe state-dict name with the source's axis layout. Layout letters: O/I = output/input channels,
H/W = kernel rows/columns, K = a flattened k×k kernel stored column-major (MATLAB `reshape`: rows vary fastest);
axes the source dropped (MATLAB drops trailing singleton dimensions) count as 1. Targets are `conv` (O, I, H, W),
`convt` (PyTorch ConvTranspose2d: I, O, H, W) or `bias` (O). `range` rescales a tensor by
rgb_range**range, for files trained on [0, 255] images (srpipe works on [0, 1]): built from convolutions, ReLUs,
pixel shuffles and residual sums, a network is positively homogeneous once its biases are divided by 255, so the
conversion is exact. Nothing here executes a checkpoint's code: torch files load with `weights_only=True`.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAT_MAGIC = b"MATLAB 5.0 MAT-file"
ORIGIN_RELEASED = "released"


class ConversionError(ValueError):
    """A file that srpipe cannot convert; the message says which tensor or why."""


@dataclass(frozen=True)
class Rule:
    src: str  # source name; `{n}` matches an integer, `*` the rest of the name
    dst: str | None  # srpipe name; `{expr}`: integer arithmetic over the matched names, `scale` and `log2scale`;
    # `{*}`: the rest of the name; None: drop the tensor
    axes: str = "torch"  # the source layout ("torch" = already PyTorch's) in the letters of the module docstring
    kind: str = "conv"  # conv | convt | bias (ignored for "torch" layouts)
    range: int | None = None  # multiply by rgb_range ** range; None: -1 for biases (pixel units), 0 for weights
    scales: tuple[int, ...] = ()  # only at these scales (RDN's up-sampler differs at x4)


@dataclass(frozen=True)
class Format:
    description: str
    reader: str  # a key of READERS
    rules: tuple[Rule, ...]
    rgb_range: float = 1.0  # the value range the file's network was trained on
    keep_init: tuple[str, ...] = ()  # srpipe tensors the file does not hold (training-only parts): left as built


# SRCNN test code (SRCNN.m): weights_conv1 is k²×n1, weights_conv2 n1×k²×n2, weights_conv3 n2×k²; imfilter
# correlates like PyTorch's conv2d.
_SRCNN = (
    Rule("weights_conv1", "body.0.weight", "K,O"),
    Rule("biases_conv1", "body.0.bias", "O", "bias"),
    Rule("weights_conv2", "body.2.weight", "I,K,O"),
    Rule("biases_conv2", "body.2.bias", "O", "bias"),
    Rule("weights_conv3", "reconstruct.weight", "I,K"),
    Rule("biases_conv3", "reconstruct.bias", "O", "bias"),
)
# VDSR: model.weight{i} (MatConvNet vl_nnconv filters H×W×Cin×Cout), layer i → body.{2(i-1)}.
_VDSR = (
    Rule("weight{i}", "body.{2*i-2}.weight", "H,W,I,O"),
    Rule("bias{i}", "body.{2*i-2}.bias", "O", "bias"),
)
# LapSRN DagNN params (init_LapSRN_model.m names); convt filters are H×W×Cout×Cin. The authors number the levels
# from the output: in LapSRN_x4.mat `level2` is the first (×2) level, fed by input_relu, and `level1` the last,
# so level l is srpipe's level log2(scale) - l. d = 10 convs per level in the released models: the up-sampler is
# module 20 of an srpipe level.
_LAPSRN = (
    Rule("input_conv_f", "head.0.weight", "H,W,I,O"),
    Rule("input_conv_b", "head.0.bias", "O", "bias"),
    Rule("level{l}_conv{j}_f", "feature_levels.{log2scale-l}.{2*j-2}.weight", "H,W,I,O"),
    Rule("level{l}_conv{j}_b", "feature_levels.{log2scale-l}.{2*j-2}.bias", "O", "bias"),
    Rule("level{l}_upconv_f", "feature_levels.{log2scale-l}.20.weight", "H,W,O,I", "convt"),
    Rule("level{l}_upconv_b", "feature_levels.{log2scale-l}.20.bias", "O", "bias"),
    Rule("level{l}_residual_conv_f", "residuals.{log2scale-l}.weight", "H,W,I,O"),
    Rule("level{l}_residual_conv_b", "residuals.{log2scale-l}.bias", "O", "bias"),
    Rule("level{l}_img_up_f", "image_ups.{log2scale-l}.weight", "H,W,O,I", "convt"),
)
# EDSR-PyTorch (sanghyun-son) names for EDSR, EDSR-baseline, RCAN (its CALayer `conv_du`), the RDN port
# (SFENet/RDBs/GFF/UPNet) and DRN (guoyongcs/DRN: up_blocks). Their networks see [0, 255]: biases scale by 1/255;
# channel attention's first conv sees a pooled feature, so its weight scales by 255 to keep the sigmoid's input.
_EDSR = (
    Rule("sub_mean.*", None),  # a fixed DIV2K mean shift: srpipe's MeanShift is a non-persistent buffer
    Rule("add_mean.*", None),
    Rule("*conv_du.0.weight", "{*}gate.1.weight", range=1),
    Rule("*conv_du.0.bias", "{*}gate.1.bias", range=0),
    Rule("*conv_du.2.weight", "{*}gate.3.weight"),
    Rule("*conv_du.2.bias", "{*}gate.3.bias", range=0),
    Rule("head.0.weight", "head.weight"),
    Rule("head.0.bias", "head.bias"),
    Rule("SFENet1.*", "sfe1.{*}"),
    Rule("SFENet2.*", "sfe2.{*}"),
    Rule("RDBs.{i}.convs.{c}.conv.0.*", "blocks.{i}.dense.{c}.0.{*}"),
    Rule("RDBs.{i}.LFF.*", "blocks.{i}.fusion.{*}"),
    Rule("GFF.*", "global_fusion.{*}"),
    Rule("UPNet.0.*", "tail.0.0.{*}"),
    Rule("UPNet.2.*", "tail.1.{*}", scales=(2, 3)),
    Rule("UPNet.2.*", "tail.0.2.{*}", scales=(4,)),
    Rule("UPNet.4.*", "tail.1.{*}", scales=(4,)),
    Rule("up_blocks.*", "up.{*}"),
    Rule("*", "{*}"),
)
FORMATS: dict[str, Format] = {
    "srcnn-mat": Format("SRCNN MATLAB test-code model (weights_conv1…, column-major)", "mat-vars", _SRCNN),
    "vdsr-mat": Format("VDSR official model as MATLAB cells model.weight{i}/model.bias{i}", "mat-cells", _VDSR),
    "lapsrn-dagnn": Format("MatConvNet DagNN (net.layers / net.params), LapSRN names", "mat-dagnn", _LAPSRN),
    "edsr-pytorch": Format(
        "EDSR-PyTorch family state dict (EDSR, EDSR-baseline, RCAN, RDN port, DRN); BasicSR/mmagic wrappers "
        "(params, params_ema, state_dict) unwrapped",
        "torch",
        _EDSR,
        rgb_range=255.0,
        keep_init=("dual.*",),  # DRN's dual (down-sampling) models ship as separate files and serve training only
    ),
}


# ---- readers: file → {name: array} -------------------------------------------------------------------------------


def _loadmat(path: Path) -> dict[str, Any]:
    import scipy.io  # imported here: nothing heavy at `import srpipe.released`

    try:
        return scipy.io.loadmat(path)
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ConversionError(f"{path}: a MATLAB v7.3 (HDF5) file; re-save it with save(..., '-v7') ({e})") from e


def _read_mat_vars(path: Path) -> dict[str, Any]:
    return {k: v for k, v in _loadmat(path).items() if not k.startswith("__")}


def _read_mat_cells(path: Path) -> dict[str, Any]:
    m = _loadmat(path)
    if "model" not in m or not {"weight", "bias"} <= set(m["model"].dtype.names or ()):
        raise ConversionError(f"{path}: no struct `model` with `weight`/`bias` cells")
    model = m["model"][0, 0]
    out = {}
    for field_ in ("weight", "bias"):
        cells = model[field_].ravel()
        out |= {f"{field_}{i + 1}": cells[i] for i in range(cells.size)}
    return out


def _read_mat_dagnn(path: Path) -> dict[str, Any]:
    m = _loadmat(path)
    if "net" not in m or "params" not in (m["net"].dtype.names or ()):
        raise ConversionError(f"{path}: no MatConvNet DagNN struct `net` with `params`")
    params = m["net"][0, 0]["params"].ravel()
    return {str(p["name"].item()): p["value"] for p in params}


_WRAPPERS = ("params_ema", "params", "state_dict", "model", "net", "generator")  # BasicSR, mmagic, Lightning …
_PREFIXES = ("module.", "generator.", "model.", "net.")


def _read_torch(path: Path) -> dict[str, Any]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled classes (a whole model) are refused by the restricted unpickler
        raise ConversionError(
            f"{path}: not a plain tensor file; it looks like a pickled model (code), which srpipe never loads "
            f"({str(e).splitlines()[0][:200]}). Export its weights where you trust the code: "
            "torch.save(model.state_dict(), 'weights.pth'), then import that file."
        ) from None
    while isinstance(blob, dict) and not any(isinstance(v, torch.Tensor) for v in blob.values()):
        key = next((k for k in _WRAPPERS if isinstance(blob.get(k), dict)), None)
        if key is None:
            raise ConversionError(f"{path}: no tensors found (top-level keys {sorted(blob)[:10]})")
        blob = blob[key]  # BasicSR prefers params_ema (the EMA model), as its own test scripts do
    if not isinstance(blob, dict):
        raise ConversionError(f"{path}: expected a state dict, got {type(blob).__name__}")
    out = {}
    for k, v in blob.items():
        for p in _PREFIXES:
            k = k.removeprefix(p)
        out[k] = v
    return out


READERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "mat-vars": _read_mat_vars,
    "mat-cells": _read_mat_cells,
    "mat-dagnn": _read_mat_dagnn,
    "torch": _read_torch,
}


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of `path` from its header and variable names."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(len(MAT_MAGIC))
    if head == MAT_MAGIC:
        names = set(_loadmat(path))
        if "weights_conv1" in names:
            return "srcnn-mat"
        if "net" in names:
            return "lapsrn-dagnn"
        if "model" in names:
            return "vdsr-mat"
        raise ConversionError(f"{path}: a MATLAB file with variables {sorted(names)}; no known layout")
    return "edsr-pytorch"  # zip or legacy torch pickle; the loader decides whether it holds only tensors


# ---- rules: names and layouts ------------------------------------------------------------------------------------

_ARITH = re.compile(r"^[\w\s+\-*()]+$")


@functools.lru_cache(maxsize=512)
def _pattern(src: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{\w+\}|\*)", src):
        if part == "*":
            out += r"(?P<_rest>.*)"
        elif part.startswith("{"):
            out += rf"(?P<{part[1:-1]}>\d+)"
        else:
            out += re.escape(part)
    return re.compile(out + "$")


def _target(rule: Rule, name: str, scale: int) -> tuple[bool, str | None]:
    """(matched, srpipe name or None to drop) of `name` under `rule`."""
    if rule.scales and scale not in rule.scales:
        return False, None
    m = _pattern(rule.src).match(name)
    if m is None:
        return False, None
    if rule.dst is None:
        return True, None
    values = {k: int(v) for k, v in m.groupdict().items() if k != "_rest"}
    values |= {"scale": scale, "log2scale": scale.bit_length() - 1}  # constants the expressions may use
    rest = m.groupdict().get("_rest", "")

    def fill(expr: re.Match[str]) -> str:
        e = expr.group(1)
        if e == "*":
            return rest
        if not _ARITH.match(e):
            raise ConversionError(f"rule {rule.dst!r}: bad expression {e!r}")
        return str(eval(e, {"__builtins__": {}}, values))  # integers and + - * only (checked above)

    return True, re.sub(r"\{([^}]+)\}", fill, rule.dst)


_TARGET_AXES = {"conv": "OIHW", "convt": "IOHW", "bias": "O"}


def to_tensor(value: Any, axes: str, kind: str) -> torch.Tensor:
    """A source array in layout `axes` as a float32 PyTorch tensor of kind conv / convt / bias."""
    if axes == "torch":
        return torch.as_tensor(value).float().clone()
    a = np.asarray(value, dtype=np.float32)
    if kind == "bias":
        return torch.from_numpy(a.reshape(-1).copy())
    letters = axes.split(",")
    if a.ndim > len(letters):
        raise ConversionError(f"array of shape {a.shape} has more axes than its layout {axes}")
    a = a.reshape(a.shape + (1,) * (len(letters) - a.ndim))  # MATLAB drops trailing singleton dimensions
    if "K" in letters:  # column-major k×k: index h + k·w, i.e. (W, H) in C order
        i = letters.index("K")
        k = math.isqrt(a.shape[i])
        if k * k != a.shape[i]:
            raise ConversionError(f"axis K of shape {a.shape} ({axes}) is not a square kernel")
        a = a.reshape((*a.shape[:i], k, k, *a.shape[i + 1 :]))
        letters[i : i + 1] = ["W", "H"]
    for c in _TARGET_AXES[kind]:
        if c not in letters:
            a, letters = a[..., None], [*letters, c]
    return torch.from_numpy(np.ascontiguousarray(a.transpose([letters.index(c) for c in _TARGET_AXES[kind]])))


def convert_state(
    arrays: Mapping[str, Any], fmt: Format, target: Mapping[str, torch.Tensor], scale: int
) -> dict[str, torch.Tensor]:
    """Map `arrays` (source names) onto the srpipe state dict `target` (names and shapes); refuse any mismatch."""
    from fnmatch import fnmatchcase

    out: dict[str, torch.Tensor] = {}
    for name, value in arrays.items():
        hit = next(((r, t) for r in fmt.rules for ok, t in [_target(r, name, scale)] if ok), None)
        if hit is None:
            raise ConversionError(f"source tensor {name!r} has no mapping in this format")
        rule, dst = hit
        if dst is None:
            continue
        if dst not in target:
            raise ConversionError(f"source tensor {name!r} maps to {dst!r}, which the srpipe network does not have")
        power = rule.range if rule.range is not None else -1 if dst.endswith(".bias") else 0
        t = to_tensor(value, rule.axes, rule.kind) * fmt.rgb_range**power
        if tuple(t.shape) != tuple(target[dst].shape):
            raise ConversionError(
                f"tensor mismatch: source {name!r} gives shape {tuple(t.shape)}, srpipe's {dst!r} is "
                f"{tuple(target[dst].shape)} (wrong model, scale or config/variant?)"
            )
        if dst in out:
            raise ConversionError(f"two source tensors map to {dst!r}")
        out[dst] = t
    kept = [k for k in target if k not in out and any(fnmatchcase(k, p) for p in fmt.keep_init)]
    missing = [k for k in target if k not in out and k not in kept]
    if missing:
        raise ConversionError(
            f"the file has no tensor for srpipe's {missing[0]!r} of shape {tuple(target[missing[0]].shape)} "
            f"({len(missing)} missing in all; wrong model, scale or config/variant?)"
        )
    return out | {k: target[k] for k in kept}


def convert_file(
    path: str | os.PathLike[str], model: str, scale: int, config: str = "paper", fmt: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """(srpipe state dict, format name) of the checkpoint at `path` for `model` × `scale` in `config` (Y channel for
    the MATLAB formats, RGB for the PyTorch ones)."""
    from srpipe.models import create_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    name = fmt or detect_format(path)
    if name not in FORMATS:
        raise ConversionError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)}")
    spec = FORMATS[name]
    channels = 3 if spec.reader == "torch" else 1
    target = create_model(model, scale, config, channels=channels).state_dict()
    try:
        return convert_state(READERS[spec.reader](path), spec, target, scale), name
    except ConversionError as e:
        raise ConversionError(f"{path} ({name}) as {model} x{scale} config {config!r}: {e}") from None


# ---- the catalog (released.yaml) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    psnr: float
    ssim: float
    source: str


@dataclass(frozen=True)
class ReleasedSpec:
    name: str
    model: str
    scale: int
    config: str
    variant: str
    format: str
    folder: str
    file: str
    urls: tuple[str, ...]
    size: int | None
    checksum: str | None
    source: str
    licence: str
    training_data: str
    protocol: str
    published: Mapping[str, Published] = field(default_factory=dict)


_FIELDS = {f for f in ReleasedSpec.__dataclass_fields__ if f != "name"}


def parse_released(data: Mapping[str, Any]) -> tuple[dict[str, ReleasedSpec], dict[str, str]]:
    """(entries, unavailable notes) from the YAML's mapping; a missing or unknown key raises naming the entry."""
    entries = {}
    for name, e in (data.get("weights") or {}).items():
        if set(e) != _FIELDS:
            raise ValueError(
                f"released.yaml weights.{name}: missing {sorted(_FIELDS - set(e))}, unknown {sorted(set(e) - _FIELDS)}"
            )
        if e["format"] not in FORMATS:
            raise ValueError(f"released.yaml weights.{name}: unknown format {e['format']!r}")
        published = {
            k: Published(float(v["psnr"]), float(v["ssim"]), str(v["source"])) for k, v in e["published"].items()
        }
        entries[str(name)] = ReleasedSpec(
            name=str(name), **{**e, "urls": tuple(e["urls"]), "published": published, "scale": int(e["scale"])}
        )
    return entries, {str(k): str(v) for k, v in (data.get("unavailable") or {}).items()}


@functools.cache
def load_released() -> tuple[dict[str, ReleasedSpec], dict[str, str]]:
    """The packaged catalog (srpipe/data/released.yaml), read once."""
    from importlib.resources import files

    import yaml

    return parse_released(yaml.safe_load((files("srpipe") / "data" / "released.yaml").read_text(encoding="utf-8")))


def get_released(name: str) -> ReleasedSpec:
    entries, unavailable = load_released()
    if name in entries:
        return entries[name]
    if name in unavailable:
        raise KeyError(f"no released weights of {name!r} are retrievable: {unavailable[name]}")
    raise KeyError(f"unknown released weights {name!r}; known: {', '.join(entries)}")


def find_released(model: str, scale: int) -> ReleasedSpec:
    """The catalog entry for `model` at `scale` (the first listed; SRCNN's first is 9-5-5 ImageNet)."""
    entries, unavailable = load_released()
    hit = next((e for e in entries.values() if e.model == model and e.scale == scale), None)
    if hit is None:
        have = ", ".join(sorted({f"{e.model} x{e.scale}" for e in entries.values()}))
        why = f" ({unavailable[model]})" if model in unavailable else ""
        raise KeyError(f"no released weights for {model} x{scale}{why}; the catalog has {have}")
    return hit

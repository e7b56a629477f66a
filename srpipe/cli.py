"""`srpipe`: the command-line front door. Each subcommand parses arguments and calls one stage function.

No stage logic lives here; heavy imports happen inside the handlers, so `srpipe --help` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from srpipe.config import PRECISIONS
from srpipe.context import Context
from srpipe.plan import Layout, checkpoint_for, run_key

LAYOUT = Layout()  # the defaults: paths relative to the project root, as dvc.yaml spells them

log = logging.getLogger("srpipe")

EPILOG = """\
typical use:
  srpipe download --dataset Set5 --mirror ../shared/benchmarks   fetch a dataset (or from a mirror)
  dvc repro                                                       the whole pipeline, as declared in dvc.yaml
  srpipe run                                                      the same pipeline as a Prefect flow
  srpipe upscale photo.png --model edsr --weights data/models/edsr_x4.pt --out sr/
Configuration lives in params.yaml (--params); every stage reads it once.
"""


def _params_path(args: argparse.Namespace) -> str | None:
    """--params as given (a missing file is an error), else ./params.yaml when there is one, else the defaults."""
    if args.params is not None:
        return args.params
    return "params.yaml" if Path("params.yaml").is_file() else None


def _params(args: argparse.Namespace) -> Any:
    """The command's params, read once (the fork-server check and the handler both ask)."""
    from srpipe.config import load_params

    if "_loaded_params" not in vars(args):
        args._loaded_params = load_params(_params_path(args))
    return args._loaded_params


def _parent_run(params: Any) -> str | None:
    """The MLflow run grouping this pipeline (params + code version), so stage runs nest under it."""
    from srpipe.provenance import git_commit
    from srpipe.tracking import pipeline_run

    if not params.tracking_uri():
        return None  # tracking switched off (tracking.uri: "")
    return pipeline_run(
        params.tracking_uri(), params.tracking.experiment, run_key(params), {"git_commit": git_commit()}
    )


def _context(args: argparse.Namespace, params: Any, device: str = "auto", track: bool = True) -> Context:
    """The stages' context for this command: tracking from params (nested under the pipeline's run), the device,
    progress bars unless --no-progress."""
    parent = _parent_run(params) if track else None  # None where tracking is off
    return Context.of(params, parent_run_id=parent, device=device, progress=not args.no_progress, track=track)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_download(args: argparse.Namespace) -> Any:
    from srpipe.stages.download import download

    p = _params(args).data
    names = args.dataset or list(p.datasets)
    local = dict(p.local) | dict(kv.split("=", 1) for kv in args.local)
    optional = set() if args.required else set(p.optional)
    return download(
        names,
        Path(args.raw),
        optional=optional,
        mirrors=[*args.mirror, *p.mirrors],
        local=local,
        timeout=p.timeout,
        retries=p.retries,
        progress=not args.no_progress,
    )


def cmd_prepare(args: argparse.Namespace) -> Any:
    from srpipe.stages.prepare import prepare

    params = _params(args)
    return prepare(Path(args.raw), Path(args.out), params.prepare, params.pipeline.scales, not args.no_progress)


def cmd_train(args: argparse.Namespace) -> Any:
    from srpipe.stages.train import train

    out = Path(args.out) if args.out else LAYOUT.weights(args.model, args.scale)
    resume = True if args.resume else False if args.restart else None
    params = _params(args)
    return train(
        args.model,
        args.scale,
        Path(args.store),
        out,
        params.train,
        _context(args, params, device=params.train.device),
        init_weights=args.init and Path(args.init),
        checkpoint=args.checkpoint and Path(args.checkpoint),
        resume=resume,
        config=args.config,
        iterations=args.iterations,
        recipe={k: v for k in ("lr", "batch_size", "patch_size") if (v := getattr(args, k)) is not None} or None,
        color=args.color,
    )


def cmd_evaluate(args: argparse.Namespace) -> Any:
    from srpipe.stages.evaluate import evaluate, evaluate_released, resolve_datasets

    params = _params(args)
    if args.released and (args.model or args.scale or args.weights or args.protocol):
        raise SystemExit("evaluate: --released NAME takes model, scale, weights and protocol from the catalog")
    if not args.released and not (args.model and args.scale):
        raise SystemExit("evaluate: give --model and --scale (with --weights unless bicubic), or --released NAME")
    if args.hr_dir:
        datasets = {Path(args.hr_dir).name: Path(args.hr_dir)}
    else:
        datasets, _ = resolve_datasets(Path(args.raw), args.datasets or list(params.evaluate.datasets))
        if not datasets:
            raise SystemExit("evaluate: none of the datasets is present; run `srpipe download` or pass --hr-dir")
    given = {k: v for k in ("tile", "max_memory", "protocol", "precision") if (v := getattr(args, k)) is not None}
    ev = dataclasses.replace(
        params.evaluate, self_ensemble=args.self_ensemble or params.evaluate.self_ensemble, **given
    )
    kw = {
        "out_json": args.json and Path(args.json),
        "save_images": args.save_images and Path(args.save_images),
        "ctx": _context(args, params, device=args.device, track=args.track),
    }
    if args.released:
        result = evaluate_released(args.released, datasets, ev, Path(args.released_cache), _mirrors(args), **kw)
        if "skipped" in result:
            print(f"{args.released}: skipped: {result['skipped']}")
            return None
        ev = dataclasses.replace(ev, protocol=result["protocol"])
    else:
        result = evaluate(args.model, args.scale, datasets, ev, weights=args.weights and Path(args.weights), **kw)
    for name, d in result["datasets"].items():
        print(f"{result['model']} x{result['scale']} on {name}")
        for im in d["images"]:
            print(f"  {im['name']:<16} PSNR {im['psnr']:7.3f} dB  SSIM {im['ssim']:.4f}")
        mean = f"PSNR {d['psnr']:7.3f} dB  SSIM {d['ssim']:.4f}"
        print(f"  {'mean':<16} {mean}  (Y, crop {result['scale']}, {ev.protocol})")
    return None


def cmd_leaderboard(args: argparse.Namespace) -> Any:
    from srpipe.stages.leaderboard import leaderboard

    params = _params(args)
    return leaderboard(
        Path(args.eval_dir),
        Path(args.out),
        params.leaderboard,
        raw_dir=Path(args.raw),
        ctx=_context(args, params, track=args.track),
        register_best=params.tracking.register_best,
        include=None if args.all or not params.pipeline.models else params.pipeline.evaluated(),
        released=params.pipeline.released,
    )


def cmd_manifest(args: argparse.Namespace) -> Any:
    from srpipe.codedeps import write_manifests

    return write_manifests(Path(args.out), args.commands or None)


def cmd_models(args: argparse.Namespace) -> Any:
    from srpipe.models.summary import format_table, model_table

    rows = model_table()
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return None


def _released_source(parser: argparse.ArgumentParser) -> None:
    """Where released weights come from and go: the options `evaluate`, `upscale` and `import` share."""
    parser.add_argument(
        "--released-cache",
        default=str(LAYOUT.released),
        help="converted weights, downloads in its downloads/ (default: %(default)s)",
    )
    parser.add_argument("--mirror", action="append", default=[], help="a folder or base URL holding the released files")


def _mirrors(args: argparse.Namespace) -> list[str]:
    return [*args.mirror, *_params(args).data.mirrors]


def cmd_import(args: argparse.Namespace) -> Any:
    from srpipe.stages.import_weights import import_released, import_weights

    if args.released:
        return {"out": str(import_released(args.released, Path(args.released_cache), mirrors=_mirrors(args)))}
    if not (args.file and args.model and args.scale and args.out):
        raise SystemExit("import: give FILE --model M --scale S --out OUT.pt, or --released NAME")
    return import_weights(
        Path(args.file),
        args.model,
        args.scale,
        Path(args.out),
        args.format,
        args.variant or "paper",
        source=args.source,
    )


def cmd_upscale(args: argparse.Namespace) -> Any:
    from srpipe.stages.upscale import upscale

    weights = args.weights and Path(args.weights)
    if args.released:
        from srpipe.released import find_released
        from srpipe.stages.import_weights import import_released

        if args.weights or args.scale is None:
            raise SystemExit("upscale: --released takes --scale and no --weights")
        spec = find_released(args.model, args.scale)
        weights = import_released(spec.name, Path(args.released_cache), None, _mirrors(args), not args.no_progress)
    return upscale(
        [Path(p) for p in args.inputs],
        Path(args.out),
        args.model,
        weights=weights,
        scale=args.scale,
        tile=args.tile,
        overlap=args.tile_overlap,
        self_ensemble=args.self_ensemble,
        overwrite=args.overwrite,
        max_memory=args.max_memory,
        precision=args.precision,
        ctx=Context(device=args.device, progress=not args.no_progress),
    )


def cmd_run(args: argparse.Namespace) -> Any:
    import importlib.util

    path = Path(args.flow)
    if not path.exists():
        raise SystemExit(f"run: {path} not found; run it from the project root (where dvc.yaml is) or pass --flow")
    _params(args).pipeline.check_models()  # an unknown model or scale fails now, not after download and training
    spec = importlib.util.spec_from_file_location("srpipe_flow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pipeline(params_path=_params_path(args) or "params.yaml")


def _precision_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None if default.startswith("params") else default,
        help="auto: bf16 autocast where the device computes bf16 natively (CUDA, AVX512-BF16/AMX CPUs: 3-8x faster "
        f"on CPU, within 0.01 dB of fp32), fp32 elsewhere; fp32 or bf16 to force (default: {default})",
    )


def _max_memory_help(default: str) -> str:
    from srpipe.memory import DEFAULT_FRACTION

    machine = f"{DEFAULT_FRACTION:.0%} of the machine's available memory".replace("%", "%%")
    return f"cap on resident memory, e.g. 2GB or 1.5GiB: picks the tile before the work (default: {default}{machine})"


def _size(value: str) -> str:
    from srpipe.memory import parse_size

    try:
        parse_size(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="srpipe",
        description="Reproducible single-image super-resolution: data → patches → 15 networks → "
        "PSNR/SSIM → leaderboard.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--params", help="parameters file (default: params.yaml if present, else built-in defaults)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    p.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also {DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Any, help: str, description: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=description, formatter_class=fmt)
        sp.set_defaults(fn=fn)
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        return sp

    d = add(
        "download",
        cmd_download,
        "fetch datasets into data/raw/<dataset>/<split>/",
        "Fetch datasets (catalog: DIV2K, Flickr2K, Set5, Set14, B100, Urban100, T91, General100, BSD200, and the\n"
        "offline `sample`) with resume, retries and checksum checks, from a local folder, a mirror or the\n"
        "official URL. Without --dataset, fetches params.yaml's data.required + data.optional.",
    )
    d.add_argument("--dataset", action="append", default=[], help="dataset name (repeatable)")
    d.add_argument("--raw", default=str(LAYOUT.raw), help="output root (default: %(default)s)")
    d.add_argument(
        "--mirror",
        action="append",
        default=[],
        help="a folder or base URL holding <dataset>/ or the official archives (repeatable; also "
        "params data.mirrors and $SRPIPE_MIRRORS)",
    )
    d.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="declare DIR as the images of dataset NAME (e.g. Manga109=/data/manga)",
    )
    d.add_argument("--required", action="store_true", help="fail even for datasets params.yaml lists as optional")

    pr = add(
        "prepare",
        cmd_prepare,
        "decode training images into the patch store",
        "Decode the training/validation folders named in params.yaml (prepare.train / prepare.valid) once into\n"
        "memory-mapped uint8 arrays (HR + MATLAB-bicubic LR per scale) with a Parquet patch index.",
    )
    pr.add_argument("--raw", default=str(LAYOUT.raw), help="downloaded datasets (default: %(default)s)")
    pr.add_argument("--out", default=str(LAYOUT.store), help="the store folder (default: %(default)s)")

    t = add(
        "train",
        cmd_train,
        "train one network at one scale",
        "Train MODEL at SCALE with its paper's recipe (loss, optimiser, schedule, clipping), overridable in\n"
        "params.yaml train.models.<model> and by the flags below. Resumes a matching checkpoint automatically.\n"
        "Multi-GPU: torchrun --nproc_per_node N -m srpipe train ...",
    )
    t.add_argument("--model", required=True, help="registered name (see `srpipe models`)")
    t.add_argument("--scale", type=int, required=True, help="upscaling factor")
    t.add_argument(
        "--store", default=str(LAYOUT.store), help="patch store from `srpipe prepare` (default: %(default)s)"
    )
    t.add_argument("--out", help=f"weights file (default: {LAYOUT.weights('<model>', '<scale>')})")
    t.add_argument("--init", help="initialise from this weights file (SRGAN from SRResNet)")
    t.add_argument(
        "--checkpoint", help=f"checkpoint path (default: {checkpoint_for(LAYOUT.weights('<model>', '<scale>'))})"
    )
    g = t.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require a checkpoint to resume from")
    g.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--config", choices=["paper", "tiny"], help="architecture config (default: params train.config)")
    t.add_argument("--iterations", type=_positive, help="training budget in iterations")
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--batch-size", type=_positive, help="batch size (global, split over DDP processes)")
    t.add_argument("--patch-size", type=_positive, help="HR patch side")
    t.add_argument("--color", choices=["rgb", "y", "paper"], help="train on RGB, on Y, or as the paper did")

    e = add(
        "evaluate",
        cmd_evaluate,
        "PSNR/SSIM of a model on benchmark sets",
        "Score a model on benchmark HR folders in the papers' convention: MATLAB-bicubic LR, SR rounded to\n"
        "uint8, PSNR/SSIM on the BT.601 Y channel with `scale` pixels cropped at every border.",
    )
    e.add_argument("--model", help="registered name; `bicubic` needs no weights")
    e.add_argument("--scale", type=int)
    e.add_argument(
        "--released",
        metavar="NAME",
        help="the authors' released weights from the catalog (`srpipe import --help`): fetched through --mirror / "
        "params data.mirrors, converted into --released-cache and scored under their paper's test protocol; "
        "an unavailable file is reported as skipped, not as an error",
    )
    _released_source(e)
    e.add_argument("--weights", help="weights file written by `srpipe train`")
    src = e.add_mutually_exclusive_group()
    src.add_argument("--datasets", type=_csv, help="comma-separated names under --raw, e.g. Set5,Set14")
    src.add_argument("--hr-dir", help="any folder of HR images")
    e.add_argument("--raw", default=str(LAYOUT.raw), help="downloaded datasets (default: %(default)s)")
    e.add_argument("--self-ensemble", action="store_true", help="x8 geometric self-ensemble (EDSR+)")
    e.add_argument(
        "--tile", type=int, help="tile side in LR pixels (default: the largest that fits under --max-memory)"
    )
    e.add_argument("--max-memory", type=_size, help=_max_memory_help("params evaluate.max_memory, else "))
    e.add_argument("--save-images", help="write the SR images under this folder")
    e.add_argument("--json", help="write the results as JSON here")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    _precision_option(e, "params evaluate.precision")
    e.add_argument("--track", action="store_true", help="record an MLflow run (tracking URI from params)")
    e.add_argument(
        "--protocol",
        choices=["rgb", "y-matlab", "rgb-float"],
        help="how LR inputs are made and scored: srpipe's rgb, or the Y-channel papers' test code "
        "(y-matlab: SRCNN/VDSR, rgb-float: LapSRN); see srpipe/protocols.py (default: params evaluate.protocol)",
    )

    lb = add(
        "leaderboard",
        cmd_leaderboard,
        "gather evaluations into the leaderboard",
        "Collect every evaluation JSON into leaderboard.parquet, LEADERBOARD.md and the plots, with the\n"
        "papers' published numbers and the gap to them.",
    )
    lb.add_argument("--eval-dir", default=str(LAYOUT.evals), help="evaluation JSONs (default: %(default)s)")
    lb.add_argument("--out", default=str(LAYOUT.leaderboard), help="output folder (default: %(default)s)")
    lb.add_argument("--raw", default=str(LAYOUT.raw), help="benchmark images for the visual comparison")
    lb.add_argument("--track", action="store_true", help="log to MLflow and register the best model per scale")
    lb.add_argument(
        "--all", action="store_true", help="every JSON in --eval-dir, not only the (model, scale) pairs params lists"
    )

    ma = add(
        "manifest",
        cmd_manifest,
        "list the source files each command runs (DVC's code deps)",
        "Write OUT/<command>.txt for each command: the sha256 and path of every srpipe file it may execute or\n"
        "read, from the import graph (srpipe.codedeps). dvc.yaml's `code` stage runs this, and every stage\n"
        "depends on its command's manifest instead of each source file, so dvc.lock stays small and an edit\n"
        "reruns only the stages whose command runs the edited file. `sha256sum -c OUT/train.txt` checks one.",
    )
    ma.add_argument("commands", nargs="*", metavar="COMMAND", help="commands to list (default: every command)")
    ma.add_argument("--out", default=str(LAYOUT.code), help="output folder (default: %(default)s)")

    m = add(
        "models",
        cmd_models,
        "list the registered networks",
        "The model zoo: paper, parameters of the paper config at x2/x4, scales, input space, colour mode.",
    )
    m.add_argument("--json", action="store_true", help="JSON: one object per model × scale × config")

    u = add(
        "upscale",
        cmd_upscale,
        "super-resolve your own images",
        "Apply a trained model to images or folders; large images are processed in overlapping tiles.",
    )
    u.add_argument("inputs", nargs="+", help="image files and/or folders")
    u.add_argument("--model", required=True)
    u.add_argument("--weights", help="weights file (not needed for bicubic)")
    u.add_argument("--out", required=True, help="output folder")
    u.add_argument("--scale", type=int, help="checked against the weights; required for bicubic")
    u.add_argument(
        "--tile", type=int, default=0, help="tile side in input pixels (default 0: the largest under --max-memory)"
    )
    u.add_argument("--max-memory", type=_size, help=_max_memory_help(""))
    u.add_argument("--tile-overlap", type=int, default=16, help="overlap between tiles (default: %(default)s)")
    u.add_argument("--self-ensemble", action="store_true", help="x8 geometric self-ensemble")
    u.add_argument("--device", default="auto", help="cpu, cuda ... (default: auto)")
    _precision_option(u, "auto")
    u.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    u.add_argument(
        "--released",
        action="store_true",
        help="use the authors' released weights for --model/--scale (catalog srpipe/data/released.yaml), fetched "
        "through --mirror / params data.mirrors / $SRPIPE_MIRRORS and converted once into --released-cache",
    )
    _released_source(u)

    im = add(
        "import",
        cmd_import,
        "convert the authors' released weights",
        "Convert a released checkpoint (SRCNN/VDSR MATLAB .mat, MatConvNet DagNN .mat, EDSR-PyTorch-family or\n"
        "BasicSR/mmagic .pth) into an srpipe weights file that evaluate/upscale --weights take. Torch files load\n"
        "with weights_only: a pickled model is refused. Or --released NAME: a catalog entry, fetched and converted.",
    )
    im.add_argument("file", nargs="?", help="the released checkpoint")
    im.add_argument("--model", help="registered name (see `srpipe models`)")
    im.add_argument("--scale", type=int)
    im.add_argument("--out", help="the srpipe weights file to write")
    formats = ["srcnn-mat", "vdsr-mat", "lapsrn-dagnn", "edsr-pytorch"]
    im.add_argument("--format", choices=formats, help="default: detected from the file")
    im.add_argument("--variant", help="the srpipe config the file fits, e.g. 9-1-5 for SRCNN (default: paper)")
    im.add_argument("--source", default="", help="where the file came from (repository/URL), for the card")
    im.add_argument("--released", metavar="NAME", help="a catalog entry (srpipe/data/released.yaml) instead of FILE")
    _released_source(im)

    r = add(
        "run",
        cmd_run,
        "run the whole pipeline as a Prefect flow",
        "Run flows/pipeline.py: download → prepare → train (mapped over models × scales) → evaluate →\n"
        "leaderboard, with retries, caching and logs in Prefect (a temporary server unless PREFECT_API_URL).",
    )
    r.add_argument("--flow", default="flows/pipeline.py", help="the flow file (default: %(default)s)")
    return p


DEBUG_ENV = "SRPIPE_DEBUG"


def _error(e: BaseException) -> tuple[str, int]:
    """The one-line (or one-paragraph) message and exit status for an error that ends a command.

    srpipe's own errors say what went wrong and what to do at the raise site; the types below are the ones user input
    can cause (bad files, names, values, a full disk, a tracking store). Anything else is a bug: one line, exit 1.
    """
    if isinstance(e, KeyboardInterrupt):  # the training stage words its own (checkpoint kept, how to resume)
        return str(e) or "interrupted", 130
    # str() of a KeyError adds quotes around the message: take the message itself.
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e) or type(e).__name__
    # torch's "re-run with weights_only=False" advice invites running a stranger's code: never pass it on.
    msg = "\n".join(line for line in msg.splitlines() if "weights_only" not in line).strip() or type(e).__name__
    if isinstance(e, (OSError, ValueError, LookupError, RuntimeError, EOFError, ArithmeticError, MemoryError)):
        return msg, 2
    if type(e).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "yaml", "pickle", "_pickle"):
        return f"{type(e).__name__}: {msg}", 2
    return f"unexpected error ({type(e).__name__}: {msg}); rerun with --debug for the traceback", 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # a process's own command line may go to the fork server; `main([...])` always runs here
        from srpipe.forkserver import run_served

        status = run_served(args.command, lambda: _params(args).orchestration.forkserver, sys.argv[1:])
        if status is not None:
            return status
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow.store", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    from srpipe.tracking import telemetry_off

    telemetry_off()
    try:
        result = args.fn(args)
    except (Exception, KeyboardInterrupt) as e:
        if args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        msg, status = _error(e)
        log.error("%s", msg)
        return status
    if result is not None and args.command not in ("models",):
        log.info("done: %s", json.dumps(result, default=str)[:2000])
    return 0

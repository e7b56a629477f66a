"""Each paper's loss, by the name its `Recipe.loss` gives, computed on `model.forward_train` outputs.

Multi-output losses compare each auxiliary output with the HR image resized to that output's size (MATLAB bicubic),
the way LapSRN and DRN build their pyramids of targets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srpipe.degrade import imresize
from srpipe.models.registry import Recipe

log = logging.getLogger(__name__)


REDUCTIONS = ("mean", "sum", "euclidean")


def reduce_error(err: Tensor, reduction: str = "mean") -> Tensor:
    """Per-pixel errors (N×C×H×W) → one number: "mean" over every pixel; "sum" over each image's pixels, averaged
    over the batch N; "euclidean" = half of "sum", 1/(2N)·Σ (Caffe's EuclideanLoss, applied to squared errors)."""
    if reduction == "mean":
        return err.mean()
    if reduction == "sum":
        return err.sum() / err.shape[0]
    if reduction == "euclidean":
        return err.sum() / (2 * err.shape[0])
    raise ValueError(f"unknown loss reduction {reduction!r}; choose from {', '.join(REDUCTIONS)}")


def mse(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    return reduce_error((x - y) ** 2, reduction)


def l1(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    return reduce_error((x - y).abs(), reduction)


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3, reduction: str = "mean") -> Tensor:
    """sqrt((x - y)² + ε²) (LapSRN Eq. 2); "sum" = summed over pixels, averaged over the batch (the authors' code)."""
    return reduce_error(torch.sqrt((x - y) ** 2 + eps**2), reduction)


def _resized(hr: Tensor, like: Tensor) -> Tensor:
    return hr if hr.shape[-2:] == like.shape[-2:] else imresize(hr, size=tuple(like.shape[-2:]))


def _alpha(opts: Mapping[str, Any], progress: float) -> float:
    """DRCN's recursive-supervision weight: linear from alpha_start to alpha_end until `alpha_decay_until`."""
    start, end, until = opts.get("alpha_start", 1.0), opts.get("alpha_end", 0.0), opts.get("alpha_decay_until", 0.25)
    return end if progress >= until else start + (end - start) * progress / until


class Criterion(nn.Module):
    """The loss of one recipe; an nn.Module so trainable parts (SRGAN's discriminator) go into checkpoints."""

    def __init__(self, recipe: Recipe, channels: int = 3, vgg_path: Path | None = None) -> None:
        super().__init__()
        self.name, self.opts = recipe.loss, dict(recipe.loss_options)
        self.reduction = self.opts.get("reduction", "mean")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"loss_options.reduction: {self.reduction!r} is not one of {', '.join(REDUCTIONS)}")
        self.note = ""
        self.discriminator: nn.Module | None = None
        self.vgg: nn.Module | None = None
        if self.name == "srgan":
            self._init_gan(recipe, channels, vgg_path)
        elif self.name not in LOSSES:
            raise ValueError(f"unknown loss {self.name!r}; known: {', '.join([*LOSSES, 'srgan'])}")

    def _init_gan(self, recipe: Recipe, channels: int, vgg_path: Path | None) -> None:
        from srpipe.models.srgan import Discriminator, VGG19Features

        self.discriminator = Discriminator(channels=channels, features=self.opts.get("d_features", 64))
        self.d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=recipe.lr, betas=recipe.betas)
        if vgg_path is not None:
            self.vgg = VGG19Features.load_vgg19(vgg_path)
            self.vgg.requires_grad_(False)
            self.note = f"SRGAN (VGG54 content loss, VGG19 weights from {vgg_path.name})"
        else:
            # Sec. 3.4 of the paper trains "SRGAN-MSE" too: MSE content + adversarial. Random VGG features would be
            # meaningless, so without pretrained weights that is the honest variant to train.
            self.note = "SRGAN-MSE: no pretrained VGG19 weights found, content loss is MSE (paper Sec. 3.4 variant)"
            log.warning("srgan: %s", self.note)

    def forward(self, out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float) -> tuple[Tensor, dict]:
        """Total loss and its named parts; `progress` ∈ [0, 1] drives scheduled weights (DRCN's α)."""
        if self.discriminator is not None:
            return self._generator_loss(out["sr"], hr)
        return LOSSES[self.name](out, hr, inp, progress, self.opts, self.reduction)

    def _generator_loss(self, sr: Tensor, hr: Tensor) -> tuple[Tensor, dict]:
        if self.vgg is not None:
            rescale = self.opts.get("vgg_rescale", 1 / 12.75)
            content = F.mse_loss(self.vgg(sr) * rescale, self.vgg(hr).detach() * rescale)
        else:
            content = F.mse_loss(sr, hr)
        logits = self.discriminator(sr)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        loss = content + self.opts.get("adversarial_weight", 1e-3) * adversarial
        return loss, {"content": content.detach(), "adversarial": adversarial.detach()}

    def update_discriminator(self, sr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        """One discriminator step on real HR vs detached SR (GAN losses only; a no-op otherwise)."""
        if self.discriminator is None:
            return {}
        real, fake = self.discriminator(hr), self.discriminator(sr.detach())
        d_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        if torch.distributed.is_initialized():  # keep the discriminator replicas identical under DDP
            for p in self.discriminator.parameters():
                torch.distributed.all_reduce(p.grad)
                p.grad /= torch.distributed.get_world_size()
        self.d_opt.step()
        return {"discriminator": d_loss.detach()}

    def extra_state(self) -> dict[str, Any]:
        return {"d_opt": self.d_opt.state_dict()} if self.discriminator is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.discriminator is not None and "d_opt" in state:
            self.d_opt.load_state_dict(state["d_opt"])


Loss = Callable[[dict[str, Any], Tensor, Tensor, float, Mapping[str, Any], str], tuple[Tensor, dict]]


def _pixelwise(fn: Callable[..., Tensor], name: str) -> Loss:
    def loss(out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float, opts: Mapping, red: str) -> tuple:
        value = fn(out["sr"], hr, reduction=red)
        return value, {name: value.detach()}

    return loss


def lapsrn_loss(out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float, opts: Mapping, red: str) -> tuple:
    """LapSRN: the Charbonnier loss (Eq. 2) of every pyramid level against the HR image resized to it, summed."""
    eps = opts.get("eps", 1e-3)
    parts = [charbonnier(lv, _resized(hr, lv), eps, red) for lv in out.get("levels", [out["sr"]])]
    loss = torch.stack(parts).sum()
    return loss, {"charbonnier": loss.detach()}


def drcn_loss(out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float, opts: Mapping, red: str) -> tuple:
    """DRCN Eq. 7-9: L = α·l1 + (1-α)·l2 (+ β‖W‖², the optimiser's weight decay): l1 = the D recursions' losses
    averaged, l2 = the loss of their weighted average; α decays over training."""
    alpha = _alpha(opts, progress)
    inter = torch.stack([mse(p, hr, red) for p in out["recursions"]]).mean()
    final = mse(out["sr"], hr, red)
    return alpha * inter + (1 - alpha) * final, {"intermediate": inter.detach(), "final": final.detach()}


def memnet_loss(out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float, opts: Mapping, red: str) -> tuple:
    """MemNet_M6R6_80C64_train.prototxt: one EuclideanLoss per block prediction (loss_01..loss_06) and one on the
    weighted average (loss_7), every one with loss_weight 1, summed. (Eq. 8 with α = 1/(M+1) is the same sum divided
    by M+1.)"""
    blocks = torch.stack([mse(p, hr, red) for p in out["blocks"]]).sum()
    final = mse(out["sr"], hr, red)
    loss = opts.get("block_weight", 1.0) * blocks + opts.get("final_weight", 1.0) * final
    return loss, {"blocks": blocks.detach(), "final": final.detach()}


def drn_loss(out: dict[str, Any], hr: Tensor, inp: Tensor, progress: float, opts: Mapping, red: str) -> tuple:
    """DRN's dual regression: L1 of every primal level against the HR image resized to it (the LR input at the lowest
    level), plus `dual_weight` (λ) × the L1 of each dual mapping back to the level below."""
    levels, dual = out["levels"], out["dual"]
    targets = [inp if lv.shape[-2:] == inp.shape[-2:] else _resized(hr, lv) for lv in levels]
    primal = torch.stack([F.l1_loss(lv, t) for lv, t in zip(levels, targets)]).sum()
    dual_loss = torch.stack([F.l1_loss(d, targets[k]) for k, d in enumerate(dual)]).sum()
    loss = primal + opts.get("dual_weight", 0.1) * dual_loss
    return loss, {"primal": primal.detach(), "dual": dual_loss.detach()}


# Recipe.loss → loss. "srgan" is not here: it owns trainable state (the discriminator, VGG19), so `Criterion` builds it.
LOSSES: dict[str, Loss] = {
    "mse": _pixelwise(mse, "mse"),
    "l1": _pixelwise(l1, "l1"),
    "charbonnier": _pixelwise(charbonnier, "charbonnier"),
    "lapsrn": lapsrn_loss,
    "drcn": drcn_loss,
    "memnet": memnet_loss,
    "drn": drn_loss,
}

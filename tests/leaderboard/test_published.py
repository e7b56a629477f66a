"""published.csv: the standard tables' figures, only registered models, only the allowed statuses, lookups."""

from __future__ import annotations

import pytest

from srpipe.leaderboard.published import STATUSES, Figure, load_published, lookup, parse, training_key
from srpipe.models import get_card, list_models

# The values every comparison table agrees on (RCAN ECCV'18 Table 3, RDN CVPR'18, EDSR CVPRW'17; DRN README).
REQUIRED = {
    2: {"srcnn": 36.66, "fsrcnn": 37.05, "vdsr": 37.53, "drcn": 37.63, "lapsrn": 37.52, "drrn": 37.74}
    | {"memnet": 37.78, "edsr": 38.11, "rdn": 38.24, "rcan": 38.27},
    4: {"srcnn": 30.48, "fsrcnn": 30.72, "vdsr": 31.35, "drcn": 31.53, "lapsrn": 31.54, "drrn": 31.68}
    | {"memnet": 31.74, "srdensenet": 32.02, "srresnet": 32.05, "edsr": 32.46, "rdn": 32.47, "rcan": 32.63}
    | {"drn_s": 32.68, "drn_l": 32.74},
}


@pytest.mark.parametrize("scale,model,psnr", [(s, m, p) for s, d in REQUIRED.items() for m, p in d.items()])
def test_required_set5_values(scale: int, model: str, psnr: float) -> None:
    fig = lookup(model, scale, "Set5")
    assert fig is not None and fig.psnr == psnr and fig.source


def test_models_are_registered_and_statuses_allowed() -> None:
    table = load_published()
    assert {model for model, _, _, _ in table} <= set(list_models())
    assert {fig.status for fig in table.values()} <= set(STATUSES)
    assert {dataset for _, _, dataset, _ in table} <= {"", "Set5", "Set14", "B100", "Urban100"}
    assert {training for *_, training in table} <= {"", "T91"}


def test_every_model_scale_has_a_row() -> None:
    """Where a paper gives nothing at x2/x3/x4, a "not published" row says so (x8 is not collected)."""
    missing = [
        (m, s) for m in list_models() for s in get_card(m).scales if s in (2, 3, 4) and lookup(m, s, "Set5") is None
    ]
    assert not missing


def test_flags_follow_the_notes() -> None:
    table = load_published()
    assert all(f.status == "UNCONFIRMED" for (m, *_), f in table.items() if m == "red30" and f.psnr is not None)
    assert table["drcn", 3, "Urban100", ""].status == "UNCONFIRMED"
    assert table["drcn", 4, "Set5", ""].status == "secondary"
    assert table["edsr_baseline", 2, "Set5", ""].status == "secondary"
    assert table["drn_s", 4, "Set5", ""] == Figure(32.68, None, table["drn_s", 4, "Set5", ""].source, "published")


def test_lookup_falls_back_to_the_model_wide_row() -> None:
    assert lookup("espcn", 4, "Urban100") == Figure(None, None, lookup("espcn", 4, "").source, "not published")
    assert lookup("edsr", 8, "Set5") is None  # never collected: no status at all
    assert lookup("red30", 2, "Urban100").status == "not published"


# The 91-image models of the papers srpipe's repro profile trains (params-repro.yaml): SRCNN ECCV'14 Tables 1-2
# (9-1-5), FSRCNN ECCV'16 (before General-100), ESPCN CVPR'16 Table 1 (tanh).
T91 = [("srcnn", "Set5", 32.39), ("srcnn", "Set14", 29.00), ("fsrcnn", "Set5", 33.06), ("espcn", "Set5", 32.55)]


@pytest.mark.parametrize("model,dataset,psnr", T91)
def test_a_model_trained_on_t91_is_compared_with_the_papers_t91_figure(model: str, dataset: str, psnr: float) -> None:
    fig = lookup(model, 3, dataset, ["T91"])
    assert fig is not None and fig.psnr == psnr and fig.training == "T91"
    headline = lookup(model, 3, dataset)  # no training data given (or other data): the headline figure
    assert headline is not None and headline.training == "" and lookup(model, 3, dataset, ["DIV2K"]) == headline


def test_training_key_is_order_free() -> None:
    assert training_key(["Flickr2K", "DIV2K", "DIV2K"]) == "DIV2K+Flickr2K" == training_key(("DIV2K", "Flickr2K"))


@pytest.mark.parametrize(
    "line,message",
    [
        ("edsr,4,Set5,,32.46,0.8968,x,maybe", "status 'maybe'"),
        ("edsr,4,Set5,,,,x,published", "status 'published' with psnr ''"),
        ("edsr,four,Set5,,32.46,0.8968,x,published", "line 2"),
    ],
)
def test_parse_rejects_bad_rows(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse("model,scale,dataset,training,psnr,ssim,source,status\n" + line + "\n")


def test_parse_rejects_duplicates() -> None:
    row = "edsr,4,Set5,,32.46,0.8968,x,published\n"
    with pytest.raises(ValueError, match="line 3: duplicate"):
        parse("model,scale,dataset,training,psnr,ssim,source,status\n" + row + row)

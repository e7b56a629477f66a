"""SRGAN's discriminator and VGG19 feature extractor (srpipe.models.srresnet): shapes, layout, weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srpipe.models import count_params
from srpipe.models.srgan import Discriminator, VGG19Features, load_vgg19


@pytest.mark.parametrize("size", [24, 40, 96])
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_gives_one_logit_per_image(size: int, channels: int) -> None:
    d = Discriminator(channels=channels, features=8).eval()
    with torch.no_grad():
        assert d(torch.rand(2, channels, size, size)).shape == (2, 1)


def test_discriminator_is_the_papers_at_96() -> None:
    d = Discriminator()
    assert d.classifier[1].in_features == 512 * 6 * 6  # 96 / 2^4 = 6: the pooling is an identity there
    assert count_params(d) == 23_563_649
    x = torch.rand(1, 3, 96, 96)
    assert torch.equal(d.pool(d.features(x)), d.features(x))


def test_discriminator_trains() -> None:
    torch.manual_seed(0)
    d = Discriminator(features=8).train()
    d(torch.rand(4, 3, 32, 32)).mean().backward()
    assert all(p.grad is not None for p in d.parameters())


def test_vgg19_layout_matches_torchvision() -> None:
    vgg = VGG19Features()
    assert count_params(vgg) == 20_024_384  # all 16 convs of VGG19
    assert len(vgg.features) == 35 and isinstance(vgg.features[34], torch.nn.Conv2d)  # ends at conv5_4
    assert len(VGG19Features(before_activation=False).features) == 36  # paper's φ5,4: after the ReLU
    convs = [i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert not any(p.requires_grad for p in vgg.parameters())
    assert set(vgg.state_dict()) == {f"features.{i}.{w}" for i in convs for w in ("weight", "bias")}


def test_vgg19_shapes_and_activation() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    before = VGG19Features()(x)
    assert before.shape == (2, 512, 2, 2)
    assert (before < 0).any()  # conv5_4 before its ReLU
    assert (VGG19Features(before_activation=False)(x) >= 0).all()
    assert VGG19Features()(torch.rand(1, 1, 32, 32)).shape == (1, 512, 2, 2)  # Y input is repeated to RGB


def test_load_vgg19_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = VGG19Features()
    state = dict(source.state_dict())  # keys "features.N.weight", torchvision's own
    state["classifier.6.weight"] = torch.zeros(1000, 4096)  # the classifier of a full torchvision file is ignored
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = load_vgg19(tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), source(x))
    stripped = {k.removeprefix("features."): v for k, v in source.state_dict().items()}
    torch.save(stripped, tmp_path / "stripped.pth")
    assert torch.equal(VGG19Features.load_vgg19(tmp_path / "stripped.pth")(x), source(x))


def test_load_vgg19_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="VGG19 weights not found"):
        load_vgg19(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torch state-dict file"):
        load_vgg19(tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_vgg19(tmp_path / "list.pth")
    state = dict(VGG19Features().state_dict())
    del state["features.34.weight"]
    torch.save(state, tmp_path / "truncated.pth")
    with pytest.raises(ValueError, match=r"missing \['features.34.weight'\]"):
        load_vgg19(tmp_path / "truncated.pth")
    state["features.34.weight"] = torch.zeros(512, 512, 1, 1)
    torch.save(state, tmp_path / "reshaped.pth")
    with pytest.raises(ValueError, match="shape mismatches"):
        load_vgg19(tmp_path / "reshaped.pth")
    state["features.34.weight"] = torch.zeros(512, 512, 3, 3)
    state["features.1.running_mean"] = torch.zeros(64)  # a vgg19_bn file has BN layers at other indices
    torch.save(state, tmp_path / "bn.pth")
    with pytest.raises(ValueError, match=r"unexpected \['features.1.running_mean'\]"):
        load_vgg19(tmp_path / "bn.pth")

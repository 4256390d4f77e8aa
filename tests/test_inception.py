"""Inception FID (issue 8): the FID Inception-v3 network, its weights file check, the FID formula.

The published weights (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``) cannot be
downloaded here, so loading *that* file is not tested. What is tested: the network's
state-dict keys and shapes equal those of pytorch-fid's ``fid_inception_v3()`` (torchvision's
``Inception3(num_classes=1008, aux_logits=False)``; listed below from pytorch-fid's and
torchvision's sources, and the parameter count from torchvision's documented 27,161,264 for
``inception_v3``), which is what ``load_state_dict(strict=True)`` of that file needs; a state
dict of randomly initialised weights saved to a file round-trips through :func:`load_inception`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from huscf_mpi.config import ConfigError, load_config
from huscf_mpi.metrics import (FIDInceptionV3, InceptionWeightsError, feature_statistics, frechet_distance,
                               inception_features, inception_fid, load_inception)
from huscf_mpi.metrics.inception import frechet_distance_of_features

# Module names of torchvision's Inception3 blocks (pytorch-fid patches only their forward()).
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
_B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
_C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", *(f"branch7x7dbl_{i}" for i in range(1, 6)),
      "branch_pool"]
_D = ["branch3x3_1", "branch3x3_2", *(f"branch7x7x3_{i}" for i in range(1, 5))]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
      "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
_BLOCKS = {"Mixed_5b": _A, "Mixed_5c": _A, "Mixed_5d": _A, "Mixed_6a": _B, "Mixed_6b": _C, "Mixed_6c": _C,
           "Mixed_6d": _C, "Mixed_6e": _C, "Mixed_7a": _D, "Mixed_7b": _E, "Mixed_7c": _E}
_CONVS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          *(f"{block}.{branch}" for block, branches in _BLOCKS.items() for branch in branches)]
_BASIC = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")
EXPECTED_KEYS = {f"{c}.{p}" for c in _CONVS for p in _BASIC} | {"fc.weight", "fc.bias"}
# torchvision's inception_v3: 27,161,264 parameters, of which AuxLogits 3,326,696 (conv0 98,304 + 256,
# conv1 2,457,600 + 1,536, fc 769,000); the FID network has no AuxLogits and a 1008-way fc (+8 x 2049).
EXPECTED_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights file of the right layout (random weights, non-trivial BatchNorm statistics)."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean"):
                t.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


@pytest.fixture(scope="module")
def model(weights):
    return load_inception(weights[0])


def test_state_dict_keys_and_shapes_are_pytorch_fids():
    with torch.device("meta"):
        net = FIDInceptionV3()
    sd = net.state_dict()
    assert len(_CONVS) == 94 and set(sd) == EXPECTED_KEYS
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "Conv2d_1a_3x3.bn.running_mean"):
        assert key in sd
    assert not any(k.startswith("AuxLogits") for k in sd)
    shapes = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
              "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_6e.branch7x7_2.conv.weight": (192, 192, 1, 7),
              "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
              "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
              "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1), "Mixed_7c.branch_pool.bn.running_var": (192,),
              "fc.weight": (1008, 2048), "fc.bias": (1008,)}
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert sum(p.numel() for p in net.parameters()) == EXPECTED_PARAMETERS
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_load_round_trip_strict_and_offline(weights, monkeypatch):
    path, saved = weights

    def no_download(*a, **k):
        raise AssertionError("load_inception must never download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    net = load_inception(str(path))
    loaded = net.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_load_accepts_a_file_without_num_batches_tracked(weights, tmp_path):
    _, saved = weights
    old = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    net = load_inception(tmp_path / "old.pth")
    assert torch.equal(net.state_dict()["Mixed_7c.branch_pool.conv.weight"], saved["Mixed_7c.branch_pool.conv.weight"])


@pytest.mark.parametrize("kind", ["missing", "garbage", "not_a_dict", "wrong_keys"])
def test_load_errors_are_one_line_with_the_field_and_fix(tmp_path, kind):
    path = tmp_path / "w.pth"
    if kind == "garbage":
        path.write_bytes(b"not a torch file")
    elif kind == "not_a_dict":
        torch.save([torch.zeros(1)], path)
    elif kind == "wrong_keys":  # e.g. torchvision's ImageNet weights: 1000 classes, aux logits
        torch.save({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000),
                    "AuxLogits.fc.bias": torch.zeros(1000)}, path)
    with pytest.raises(InceptionWeightsError) as e:
        load_inception(path)
    msg = str(e.value)
    assert "\n" not in msg and "evaluation.inception_weights" in msg and "pt_inception-2015-12-05" in msg
    assert isinstance(e.value, ValueError)
    if kind == "wrong_keys":
        assert "470 missing key" in msg and "1 unexpected key" in msg and "fc.bias (1000,) instead of (1008,)" in msg


def test_features_shape_grey_and_rgb(model):
    g = torch.Generator().manual_seed(1)
    grey = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    f = inception_features(model, grey, batch_size=1)
    assert f.shape == (2, 2048) and f.dtype == np.float64 and np.isfinite(f).all() and f.std() > 0
    # Grey is replicated to RGB; RGB 32 x 32 (CIFAR-10) goes through the same 299 x 299 resize.
    assert np.allclose(inception_features(model, grey[:1].repeat(1, 3, 1, 1).numpy()), f[:1], rtol=1e-5, atol=1e-7)
    rgb = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert inception_features(model, rgb).shape == (2, 2048)
    with pytest.raises(ValueError, match="1 or 3"):
        inception_features(model, torch.zeros(2, 2, 28, 28))


def test_inception_fid_zero_for_same_set_positive_otherwise(model):
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    b = -torch.ones(2, 1, 28, 28)
    b[:, :, 8:20, 8:20] = torch.rand(2, 1, 12, 12, generator=g)
    same, different = inception_fid(model, a, a), inception_fid(model, a, b)
    assert different > 0 and abs(same) < 1e-9 * different


@pytest.mark.parametrize("n1,n2,f", [(3, 4, 6), (40, 30, 6), (5, 50, 8)])
def test_frechet_distance_of_features_equals_the_sqrtm_formula(n1, n2, f):
    rng = np.random.default_rng(n1)
    x = rng.normal(size=(n1, f))
    y = rng.normal(1.0, 2.0, size=(n2, f)) @ rng.normal(size=(f, f))
    want = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert frechet_distance_of_features(x, y) == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert frechet_distance_of_features(x, x) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        frechet_distance_of_features(x[:1], y)


def test_config_inception_weights_must_exist(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError) as e:
        load_config(None, {"evaluation.inception_weights": str(missing)})
    msg = str(e.value)
    assert "\n" not in msg and "evaluation.inception_weights" in msg and "not found" in msg
    assert load_config(None).evaluation.inception_weights is None
    present = tmp_path / "w.pth"
    present.write_bytes(b"")
    cfg = load_config(None, {"evaluation.inception_weights": str(present)})
    assert cfg.evaluation.inception_weights == str(present)


def test_fid_inception_travels_and_is_tabled_as_fid_inception():
    from huscf_mpi.analysis.model import DOMAIN_METRICS, METRICS
    from huscf_mpi.roles.reports import SCALARS

    assert "fid_inception" in SCALARS
    assert METRICS["fid_inception"].header == "FID (Inception)" and not METRICS["fid_inception"].higher_is_better
    names = [m.name for m in DOMAIN_METRICS]
    assert names.index("fid_inception") == names.index("fid") + 1


def _result_file(path, seed: int, final: dict) -> str:
    from huscf_mpi.results import ResultWriter

    w = ResultWriter(path)
    w.write_provenance(config_yaml={"name": "r", "seed": seed, "data": {"domains": {"mnist": 2}}}, seed=seed)
    w.write_array("domains", ["mnist"])
    w.set_attrs("final/mnist", **final)
    return w.close()


def test_tables_show_fid_inception_only_when_a_run_has_it(tmp_path):
    from huscf_mpi.analysis import make_table

    plain = [_result_file(tmp_path / f"a{s}.h5", s, {"accuracy": 90.0 + s, "fid": 10.0 + s}) for s in (0, 1)]
    text, _ = make_table(plain)
    assert "FID (clf)" in text and "Inception" not in text
    with_inception = [_result_file(tmp_path / "b0.h5", 0, {"accuracy": 90.0, "fid": 10.0, "fid_inception": 30.0}),
                      _result_file(tmp_path / "b1.h5", 1, {"accuracy": 91.0, "fid": 11.0, "fid_inception": 32.0})]
    text, _ = make_table(with_inception)
    head = [c.strip() for c in text.strip().splitlines()[0].strip("|").split("|")]
    assert head.index("mnist FID (Inception)") == head.index("mnist FID (clf)") + 1
    assert "31.00 ± 1.41" in text

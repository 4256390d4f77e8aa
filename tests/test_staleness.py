"""FedAsync's staleness functions (Xie et al. 2019) against hand-computed values, and their config text."""
import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from huscf_mpi.config import StalenessSpec
from huscf_mpi.federation.staleness import (StalenessFunction, constant, hinge, parse_staleness,
                                            polynomial)

S = np.array([0, 1, 2, 3, 7])


def test_constant_is_one_everywhere():
    w = constant(S)
    assert w.dtype == np.float64 and w.shape == S.shape
    np.testing.assert_array_equal(w, 1.0)


def test_polynomial_hand_values():
    # (s + 1)^(-a): a = 1 → 1, 1/2, 1/3, 1/4, 1/8; a = 0.5 → 1, 1/√2, 1/√3, 1/2, 1/(2√2)
    np.testing.assert_allclose(polynomial(S, 1), [1, 1 / 2, 1 / 3, 1 / 4, 1 / 8], rtol=0, atol=1e-15)
    np.testing.assert_allclose(polynomial(S, 0.5), [1, 2 ** -0.5, 3 ** -0.5, 0.5, 8 ** -0.5], rtol=0, atol=1e-15)
    assert polynomial(S, 2)[3] == 1 / 16


def test_hinge_hand_values():
    # b = 2: full weight up to staleness 2; beyond, 1 / (a (s - b) + 1); a = 10 → s=3: 1/11, s=7: 1/51
    np.testing.assert_allclose(hinge(S, 10, 2), [1, 1, 1, 1 / 11, 1 / 51], rtol=0, atol=1e-15)
    # b = 0: decays from staleness 1 on; a = 0.5 → s=1: 1/1.5, s=2: 1/2, s=3: 1/2.5, s=7: 1/4.5
    np.testing.assert_allclose(hinge(S, 0.5, 0), [1, 1 / 1.5, 1 / 2, 1 / 2.5, 1 / 4.5], rtol=0, atol=1e-15)
    # a non-integer hinge: b = 1.5 keeps staleness 1 full and decays 2 by a·0.5
    np.testing.assert_allclose(hinge([1, 2], 4, 1.5), [1, 1 / 3], rtol=0, atol=1e-15)


def test_shapes_scalars_and_empty():
    w = polynomial(np.arange(6).reshape(2, 3), 1)
    assert w.shape == (2, 3) and w.dtype == np.float64
    assert polynomial(3, 1).shape == () and float(polynomial(3, 1)) == 0.25
    assert hinge([], 1, 1).shape == (0,)
    assert constant(np.array([1, 2], dtype=np.int8)).dtype == np.float64


@pytest.mark.parametrize("fn", [constant, lambda s: polynomial(s, 1), lambda s: hinge(s, 1, 1)])
def test_bad_staleness(fn):
    with pytest.raises(ValueError, match=">= 0"):
        fn([0, -1])
    with pytest.raises(TypeError, match="integers"):
        fn([0.5])
    with pytest.raises(TypeError, match="integers"):
        fn([True])


def test_bad_parameters():
    for a in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="parameter a"):
            polynomial([1], a)
    with pytest.raises(ValueError, match="parameter b"):
        hinge([1], 1, -1)


def test_non_increasing_and_one_at_zero():
    s = np.arange(50)
    for f in (parse_staleness("polynomial(0.5)"), parse_staleness("hinge(10, 4)"), parse_staleness("constant")):
        w = f(s)
        assert w[0] == 1 and np.all(np.diff(w) <= 0) and np.all(w > 0)


def test_parse_forms():
    assert parse_staleness("constant") == StalenessFunction("constant")
    assert parse_staleness(" Constant() ") == StalenessFunction("constant")
    f = parse_staleness("polynomial(0.5)")
    assert f == StalenessFunction("polynomial", (0.5,)) and str(f) == "polynomial(0.5)"
    g = parse_staleness("hinge( 10 ,4 )")
    assert g.params == (10.0, 4.0) and str(g) == "hinge(10, 4)"
    np.testing.assert_array_equal(g(S), hinge(S, 10, 4))
    assert parse_staleness(g) is g
    assert parse_staleness(str(g)) == g  # round trip


@pytest.mark.parametrize("text,words", [
    ("linear(1)", "unknown name 'linear'"),
    ("polynomial", "polynomial takes 1 parameter(s), got 0"),
    ("hinge(1)", "hinge takes 2 parameter(s), got 1"),
    ("constant(1)", "constant takes 0 parameter(s), got 1"),
    ("polynomial(x)", "parameters must be numbers"),
    ("polynomial(0)", "parameter a must be finite and > 0"),
    ("hinge(1, -2)", "parameter b must be finite and >= 0"),
    ("hinge(1, 2", "expected constant"),
    ("", "expected constant"),
    (3, "must be text"),
])
def test_parse_errors_are_one_line(text, words):
    with pytest.raises(ValueError) as e:
        parse_staleness(text)
    msg = str(e.value)
    assert words in msg and "\n" not in msg and "polynomial(a) or hinge(a, b)" in msg


def test_pydantic_field():
    class M(BaseModel):
        staleness: StalenessSpec = parse_staleness("constant")

    m = M(staleness="hinge(10, 4)")
    assert m.staleness == StalenessFunction("hinge", (10, 4))
    assert m.model_dump() == {"staleness": "hinge(10, 4)"}
    assert M().staleness.name == "constant"
    with pytest.raises(ValidationError, match="unknown name 'step'"):
        M(staleness="step(1)")

"""BASED: the option check shared by the stateless fast paths (Numba and torch)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.reference.based import DEFAULT_EPS, based_attention, based_fast_path_options

LINEAR = {
    "layer": "linear",
    "causal": True,
    "form": "quadratic",
    "layout": "full",
    "chunk_size": 64,
    "eps": DEFAULT_EPS,
}
STATELESS = {"initial_state": None, "return_state": False, "window": None, "scale": None, "mask": None}


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"initial_state": 0.0}, ValueError, "initial_state: the Numba path carries no recurrent state"),
        ({"return_state": True}, ValueError, "return_state: the Numba path carries no recurrent state"),
        ({"return_state": "yes"}, TypeError, "return_state: expected True or False"),
        (
            {"form": "parallel"},
            ValueError,
            "form: expected one of ('quadratic', 'recurrent', 'chunked'), got 'parallel'",
        ),
        ({"layout": "half"}, ValueError, "layout: expected one of ('full', 'compact'), got 'half'"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"window": 4}, ValueError, "window: applies to layer='window' only"),
        ({"layer": "window", "form": "chunked"}, ValueError, "form: applies to layer='linear' only"),
        ({"layer": "dense"}, ValueError, "layer: expected one of"),
        ({"causal": "yes"}, TypeError, "causal: expected True or False"),
        ({"causal": False, "form": "chunked"}, ValueError, "form: the 'chunked' evaluation is causal"),
        # the window layer has no state at all: the layer check speaks before the stateless-path one
        ({"layer": "window", "initial_state": 0.0}, ValueError, "initial_state: applies to layer='linear' only"),
        ({"layer": "window", "return_state": True}, ValueError, "return_state: applies to layer='linear' only"),
    ],
)
def test_stateless_fast_path_options_refused_by_name(changes, error, message) -> None:
    options = {**LINEAR, **STATELESS, **changes}
    with pytest.raises(error) as caught:
        based_fast_path_options("Numba", **options)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "layer_options",
    [
        LINEAR,
        {**LINEAR, "form": "chunked", "layout": "compact"},
        {**LINEAR, "causal": False, "form": "recurrent"},
        {"layer": "window", "causal": True, "window": 8, "scale": 0.5},
    ],
)
def test_stateless_fast_path_options_accept_valid_calls(layer_options) -> None:
    causal = based_fast_path_options(
        "torch",
        **{
            **STATELESS,
            **{"form": "quadratic", "layout": "full", "chunk_size": 64, "eps": DEFAULT_EPS},
            **layer_options,
        },
    )
    assert causal is layer_options["causal"]


def _qkv(seed: int, n: int = 7, d: int = 3, d_v: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((1, 2, n, width)) for width in (d, d, d_v))


@pytest.mark.parametrize("causal", [True, False])
def test_eps_is_added_to_the_normaliser_by_every_form(causal) -> None:
    # o_i = Σ_j κ_ij v_j / (Σ_j κ_ij + ε), κ = 1 + s + s²/2: with ε = 0.5 (not the 1e-12 default) a dropped
    # or subtracted ε moves the output far beyond rounding.
    q, k, v = _qkv(3)
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    kernel = 1 + s + s**2 / 2
    if causal:
        kernel = np.tril(kernel)
    expected = (kernel @ v) / (kernel.sum(-1, keepdims=True) + 0.5)
    forms = ["quadratic", "recurrent"] + (["chunked"] if causal else [])
    for form in forms:
        out = based_attention(q, k, v, causal=causal, eps=0.5, form=form, chunk_size=3)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=0, err_msg=form)


@pytest.mark.parametrize(("layout", "features"), [("full", 1 + 3 + 9), ("compact", 1 + 3 + 6)])
def test_recurrent_state_lives_in_the_layouts_feature_space(layout, features) -> None:
    # The carried state Σ_j φ(k_j) v_jᵀ (with the normaliser's Σ_j φ(k_j)) has one row per feature of the
    # chosen layout, and resuming from it continues the same sequence.
    q, k, v = _qkv(4)
    full = based_attention(q, k, v, layout=layout, form="recurrent")
    head, state = based_attention(
        q[..., :4, :], k[..., :4, :], v[..., :4, :], layout=layout, form="recurrent", return_state=True
    )
    numerator, normaliser = state
    assert numerator.shape[-2:] == (features, v.shape[-1]) and normaliser.shape[-1] == features, layout
    tail = based_attention(
        q[..., 4:, :], k[..., 4:, :], v[..., 4:, :], layout=layout, form="recurrent", initial_state=state
    )
    np.testing.assert_allclose(np.concatenate([head, tail], -2), full, rtol=1e-12, atol=1e-13)


def test_the_window_layer_accepts_the_linear_layers_defaults_passed_explicitly() -> None:
    # an option of the other layer is refused only when it differs from its default (equal, not identical)
    q, k, v = _qkv(5)
    expected = based_attention(q, k, v, layer="window", window=3)
    got = based_attention(q, k, v, layer="window", window=3, eps=float("1e-12"), chunk_size=int("64"), layout="full")
    np.testing.assert_array_equal(got, expected)

"""BASED: the option check shared by the stateless fast paths (Numba and torch)."""

from __future__ import annotations

import pytest

from attnlab.reference.based import DEFAULT_EPS, based_fast_path_options

LINEAR = {"layer": "linear", "form": "quadratic", "layout": "full", "chunk_size": 64, "eps": DEFAULT_EPS}
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
    [LINEAR, {**LINEAR, "form": "chunked", "layout": "compact"}, {"layer": "window", "window": 8, "scale": 0.5}],
)
def test_stateless_fast_path_options_accept_valid_calls(layer_options) -> None:
    based_fast_path_options(
        "torch",
        **{
            **STATELESS,
            **{"form": "quadratic", "layout": "full", "chunk_size": 64, "eps": DEFAULT_EPS},
            **layer_options,
        },
    )

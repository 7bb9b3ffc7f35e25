"""One test per class of input-validation failure, on every path (reference, Numba and its VJP, torch).

The classes: unvalidated structured arguments (MLA weights), errors naming an argument the caller did not
pass, foreign arrays (torch tensors on NumPy paths and vice versa, meta tensors, torch masks), missing
arguments and empty batches, options that produced NaN (``relu`` with ``eps = 0``, NumPy scalar types,
integer or complex λ tensors), and inputs too large for the compute dtype. The generated fuzzer
(``test_fuzz.py``) hunts for new instances; these pin each class down with a fixed example.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from attnlab.core import Shape
from attnlab.forms import all_forms, get_form
from attnlab.validation import is_checked

rng = np.random.default_rng(0)
MLA = get_form("mla")
MLA_SAMPLE = MLA.sample(1, Shape(batch=2, heads=2, kv_heads=2, n=5, d=4, d_v=3))  # odd seed: query LoRA
MLA_X, MLA_W = MLA_SAMPLE.args


def _torch(value):
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        return tensor.double() if value.dtype.kind == "f" else tensor
    return value


def paths(form_name: str):
    """``(label, call)`` per path of a form; ``call(*args, **kwargs)`` converts arrays for torch paths
    (``raw=True``: passes them as given) and supplies an upstream gradient to VJPs."""
    form = get_form(form_name)
    out = [("reference", lambda *a, raw=False, **k: form.reference(*a, **k))]
    for path in form.fast_paths:
        fn = path.load()
        if path.kind == "torch":

            def call(*a, raw=False, fn=fn, **k):
                if raw:
                    return fn(*a, **k)
                return fn(*(_torch(x) for x in a), **{key: _torch(v) for key, v in k.items()})

            out.append((path.name, call))
        else:
            out.append((path.name, lambda *a, raw=False, fn=fn, **k: fn(*a, **k)))
            vjp = path.load_vjp()
            if vjp is not None:

                def call_vjp(*a, raw=False, vjp=vjp, **k):
                    shape = _output_shape(form, a, k)
                    return vjp(np.ones(shape), *a, **k)

                out.append((f"{path.name}-vjp", call_vjp))
    return out


def _output_shape(form, args, kwargs) -> tuple[int, ...]:
    """The output shape of a valid call like this one (an upstream gradient for a VJP)."""
    zeros = [np.zeros_like(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
    attempts = ((args, kwargs), (zeros, kwargs), (args[:3], kwargs), (args[:3], {}))
    for positional, keywords in attempts:
        try:
            return np.shape(form.reference(*positional, **keywords))
        except (TypeError, ValueError):
            continue
    return (1, 1)


def rejects(call, *args, match: str, error: type[Exception] | tuple = (TypeError, ValueError), **kwargs) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert re.search(match, message), f"{message!r} does not match {match!r}"
    return message


# ---------------------------------------------------------------------------------------------
# structured arguments


WEIGHT_CASES = [
    (
        "nan",
        lambda w: replace(w, w_dq=np.where(np.arange(w.w_dq.size).reshape(w.w_dq.shape) == 3, np.nan, w.w_dq)),
        r"weights\.w_dq.*NaN",
    ),
    ("inf", lambda w: replace(w, w_o=np.full_like(w.w_o, np.inf)), r"weights\.w_o.*NaN or Inf"),
    ("integer", lambda w: replace(w, w_uq=np.ones(w.w_uq.shape, dtype=np.int64)), r"weights\.w_uq.*dtype"),
    ("odd-d_rope", lambda w: replace(w, d_rope=w.d_rope + 1), r"weights\.d_rope"),
    ("inconsistent-d_rope", lambda w: replace(w, d_rope=w.d_rope + 2), r"weights\.(w_dkv|kv_norm|w_uq)"),
    ("w_o-shape", lambda w: replace(w, w_o=w.w_o[:-1]), r"weights\.w_o.*shape"),
    ("head-count", lambda w: replace(w, n_heads=w.n_heads + 1), r"weights\.(w_uq|w_ukv|w_o)"),
    ("missing-q_norm", lambda w: replace(w, q_norm=None), r"weights\.q_norm"),
    ("a-dict", lambda w: {"w_o": w.w_o}, r"\bweights\b"),
]


@pytest.mark.parametrize(("label", "call"), paths("mla"), ids=[p[0] for p in paths("mla")])
@pytest.mark.parametrize(("case", "edit", "match"), WEIGHT_CASES, ids=[c[0] for c in WEIGHT_CASES])
def test_mla_weights_are_validated_field_by_field(label, call, case, edit, match) -> None:
    rejects(call, MLA_X, edit(MLA_W), match=match)


@pytest.mark.parametrize(("label", "call"), paths("mla"), ids=[p[0] for p in paths("mla")])
@pytest.mark.parametrize("base", [0.0, -10.0, float("nan"), np.inf, True, "10000"])
def test_mla_rope_base_must_be_a_positive_finite_number(label, call, base) -> None:
    rejects(call, MLA_X, MLA_W, rope_base=base, match=r"\brope_base\b")


def test_torch_mla_weights_as_tensors_are_validated_too() -> None:
    from attnlab.fastpath.torch.mla import TorchMLAWeights, mla_attention

    weights = TorchMLAWeights.from_numpy(MLA_W, torch.float64)
    x = torch.from_numpy(MLA_X)
    rejects(mla_attention, x, replace(weights, w_o=weights.w_o[:, :-1]), match=r"weights\.w_o.*shape")
    rejects(mla_attention, x, replace(weights, kv_norm=weights.kv_norm.to("meta")), match=r"weights\.kv_norm.*meta")


# ---------------------------------------------------------------------------------------------
# errors name what the caller passed


DIFF = get_form("differential")
DIFF_SAMPLE = DIFF.sample(0, Shape(heads=4, kv_heads=2))


@pytest.mark.parametrize(("label", "call"), paths("differential"), ids=[p[0] for p in paths("differential")])
def test_differential_errors_name_q1_k1_q2_k2(label, call) -> None:
    q1, k1, q2, k2, v = DIFF_SAMPLE.args
    kw = DIFF_SAMPLE.kwargs
    heads3 = np.concatenate([k1] * 3, axis=-3)
    for name, args in (
        ("k1", (q1, heads3, q2, k2, v)),
        ("k2", (q1, k1, q2, k2[..., :-1, :], v)),
        ("q1", (q1[..., :-1], k1, q2, k2, v)),
        ("q2", (q1, k1, q2[..., :-1, :], k2, v)),
    ):
        message = rejects(call, *args, match=rf"\b{name}\b", **kw)
        assert not re.match(r"^\s*(q|k)\s*:", message), f"{label}: {message!r} names q/k, which the call has not"


@pytest.mark.parametrize(("label", "call"), paths("mla"), ids=[p[0] for p in paths("mla")])
def test_mla_never_names_its_internal_q(label, call) -> None:
    message = rejects(call, MLA_X, replace(MLA_W, w_uq=MLA_W.w_uq * np.nan), match=r"weights\.w_uq")
    assert not message.startswith("q:")


# ---------------------------------------------------------------------------------------------
# foreign arrays: one rule on every path


SOFTMAX = get_form("softmax")
Q, K, V = SOFTMAX.sample(0, Shape()).args
NUMPY_PATHS = [p for p in paths("softmax") if p[0] != "torch"]

FOREIGN = {
    "tensor": lambda a: torch.from_numpy(a),
    "requires-grad": lambda a: torch.from_numpy(a.copy()).requires_grad_(True),
    "bfloat16": lambda a: torch.from_numpy(a).to(torch.bfloat16),
    "meta": lambda a: torch.from_numpy(a).to("meta"),
}


@pytest.mark.parametrize(("label", "call"), NUMPY_PATHS, ids=[p[0] for p in NUMPY_PATHS])
@pytest.mark.parametrize("kind", list(FOREIGN))
def test_numpy_paths_reject_torch_tensors_by_name(label, call, kind) -> None:
    message = rejects(call, Q, FOREIGN[kind](K), V, match=r"^k: expected a float NumPy array", error=TypeError)
    assert "torch.Tensor" in message and ".numpy()" in message


@pytest.mark.parametrize(("label", "call"), NUMPY_PATHS, ids=[p[0] for p in NUMPY_PATHS])
def test_numpy_paths_reject_a_torch_mask_without_contradicting_themselves(label, call) -> None:
    mask = torch.ones(Q.shape[-2], K.shape[-2], dtype=torch.bool)
    message = rejects(call, Q, K, V, mask=mask, match=r"^mask: expected a NumPy boolean array", error=TypeError)
    assert "torch.Tensor" in message and "dtype torch.bool" not in message


def test_torch_paths_reject_numpy_arrays_and_meta_tensors_by_name() -> None:
    from attnlab.fastpath.torch.softmax import softmax_attention

    q, k, v = (torch.from_numpy(a) for a in (Q, K, V))
    rejects(softmax_attention, q, K, v, match=r"^k: expected a float torch\.Tensor.*torch\.from_numpy", error=TypeError)
    rejects(softmax_attention, q, k, v.to("meta"), match=r"^v: .*meta device", error=TypeError)
    rejects(softmax_attention, q, k, v, mask=torch.ones(8, 8, dtype=torch.bool, device="meta"), match=r"^mask: .*meta")
    # keyword option arrays may be NumPy: converted to the inputs' device
    allowed = np.ones((Q.shape[-2], K.shape[-2]), dtype=bool)
    torch.testing.assert_close(softmax_attention(q, k, v, mask=allowed), softmax_attention(q, k, v))


def test_the_numpy_and_torch_checks_word_a_bad_array_alike() -> None:
    from attnlab.fastpath.torch.softmax import softmax_attention as torch_softmax
    from attnlab.reference.softmax import softmax_attention

    for edit in (lambda a: a * np.nan, lambda a: a.reshape(-1), lambda a: a.astype(np.int64), lambda a: a[..., :0]):
        bad = edit(K)
        with pytest.raises((TypeError, ValueError)) as ref:
            softmax_attention(Q, bad, V)
        with pytest.raises((TypeError, ValueError)) as fast:
            torch_softmax(*(torch.from_numpy(a) for a in (Q, bad, V)))
        ref_text, fast_text = str(ref.value), str(fast.value)
        assert type(ref.value) is type(fast.value)
        assert ref_text.split(":")[0] == fast_text.split(":")[0] == "k"
        assert re.sub(r"dtype \S+|array|tensor", "", ref_text) == re.sub(r"dtype \S+|array|tensor", "", fast_text)


# ---------------------------------------------------------------------------------------------
# missing arguments and empty batches


@pytest.mark.parametrize(("label", "call"), paths("softmax"), ids=[p[0] for p in paths("softmax")])
def test_a_missing_value_array_is_named(label, call) -> None:
    rejects(call, Q, K, None, match=r"^v: expected", error=TypeError)


def test_validation_survives_python_dash_o() -> None:
    """No input check is an ``assert`` (``python -O`` strips those)."""
    script = (
        "import numpy as np\n"
        "from attnlab.reference.softmax import softmax_attention\n"
        "from attnlab.forms.mla import random_weights\n"
        "from attnlab.reference.mla import mla_attention\n"
        "q = np.ones((1, 2, 3, 4))\n"
        "for call in (lambda: softmax_attention(q, q, None),\n"
        "             lambda: mla_attention(np.ones((1, 3, 32)), random_weights(0, d_q_latent=8).__class__(\n"
        "                 **{**random_weights(0, d_q_latent=8).__dict__, 'q_norm': None}))):\n"
        "    try:\n"
        "        call()\n"
        "    except (TypeError, ValueError) as exc:\n"
        "        print(str(exc).split(':')[0])\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["v", "weights.q_norm"]


EMPTY_FORMS = ["tensor", "simplicial", "mla", "softmax", "btt", "mlr_bilinear"]


@pytest.mark.parametrize("name", EMPTY_FORMS)
def test_an_empty_batch_gives_an_empty_output_on_every_path(name) -> None:
    form = get_form(name)
    sample = form.sample(3, replace(form.adapt(Shape(n=5, d=4, d_v=3)) or Shape(), batch=0))
    want = sample.call(form.reference)
    assert want.shape[0] == 0
    for label, call in paths(name):
        if label.endswith("-vjp"):
            grads = call(*sample.args, **sample.kwargs)
            assert all(np.shape(g) == np.shape(a) for g, a in zip(grads, sample.args) if isinstance(a, np.ndarray))
            continue
        got = call(*sample.args, **sample.kwargs)
        assert tuple(got.shape) == want.shape, f"{name}/{label}: {tuple(got.shape)} != {want.shape}"


# ---------------------------------------------------------------------------------------------
# options that produced NaN


LINEAR_SAMPLE = get_form("linear").sample(0, Shape())


@pytest.mark.parametrize(("label", "call"), paths("linear"), ids=[p[0] for p in paths("linear")])
def test_relu_features_need_a_positive_eps(label, call) -> None:
    q, k, v = LINEAR_SAMPLE.args
    rejects(
        call, -np.abs(q), k, v, feature_map="relu", eps=0.0, match=r"^eps: expected eps > 0 with feature_map='relu'"
    )


@pytest.mark.parametrize(("label", "call"), paths("linear"), ids=[p[0] for p in paths("linear")])
def test_a_callable_feature_map_is_checked_like_an_array(label, call) -> None:
    q, k, v = LINEAR_SAMPLE.args
    if label == "numba-vjp":  # the VJP differentiates the built-in maps only, and says so
        rejects(call, q, k, v, feature_map=lambda x: x, match=r"^feature_map: the VJP supports")
        return
    rejects(call, q, k, v, feature_map=lambda x: x * float("nan"), match=r"feature_map\(q\).*NaN")
    rejects(call, q, k, v, feature_map=lambda x: x[..., :1, :], match=r"feature_map\(q\)")
    rejects(call, q, k, v, feature_map=lambda x: x > 0, match=r"feature_map\(q\).*dtype")


NUMPY_SCALARS = [
    ("softmax", {"scale": 0.375}),
    ("linear", {"eps": 1e-3}),
    ("differential", {"lam": 0.25, "scale": 0.5}),
    ("hamming", {"top_n": 3, "scale": 0.5}),
    ("simplicial", {"window1": 2, "window2": 3, "scale": 0.5}),
    ("mla", {"scale": 0.5, "rope_base": 100.0}),
]


@pytest.mark.parametrize(("name", "options"), NUMPY_SCALARS, ids=[c[0] for c in NUMPY_SCALARS])
def test_numpy_scalar_options_equal_python_ones_on_every_path(name, options) -> None:
    form = get_form(name)
    sample = form.sample(5, form.adapt(Shape(n=6, d=4, d_v=3)) or Shape())
    as_numpy = {k: (np.int64(v) if isinstance(v, int) else np.float32(v)) for k, v in options.items()}
    as_python = {k: (int(v) if isinstance(v, np.integer) else float(v)) for k, v in as_numpy.items()}
    for label, call in paths(name):
        want = call(*sample.args, **{**sample.kwargs, **as_python})
        got = call(*sample.args, **{**sample.kwargs, **as_numpy})
        for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
            np.testing.assert_array_equal(
                np.asarray(g.detach() if hasattr(g, "detach") else g),
                np.asarray(w.detach() if hasattr(w, "detach") else w),
                err_msg=f"{name}/{label}",
            )


@pytest.mark.parametrize("dtype", [torch.complex128, torch.int64, torch.bool])
def test_torch_differential_rejects_a_non_float_lam_tensor(dtype) -> None:
    from attnlab.fastpath.torch.differential import differential_attention

    args = [torch.from_numpy(a) for a in DIFF_SAMPLE.args]
    lam = torch.ones(1, dtype=dtype)
    rejects(differential_attention, *args, lam=lam, causal=True, match=r"^lam: expected a floating dtype")


@pytest.mark.parametrize(("label", "call"), paths("differential"), ids=[p[0] for p in paths("differential")])
def test_a_lam_array_may_not_enlarge_the_output(label, call) -> None:
    kw = {**DIFF_SAMPLE.without("lam").kwargs, "lam": np.ones((5, 1, 1, 1, 1))}
    rejects(call, *DIFF_SAMPLE.args, match=r"^lam: expected", **kw)


# ---------------------------------------------------------------------------------------------
# inputs too large for the compute dtype


@pytest.mark.parametrize(("label", "call"), paths("softmax"), ids=[p[0] for p in paths("softmax")])
def test_overflowing_logits_raise_instead_of_nan(label, call) -> None:
    q = np.full((1, 1, 3, 8), 1e160)
    rejects(
        call,
        q,
        q,
        np.ones((1, 1, 3, 2)),
        match=r"^(grad_out/)?q/k/v: the result is not finite in float64",
        error=ValueError,
    )


HAMMING_FORWARD = [p for p in paths("hamming") if not p[0].endswith("-vjp")]


@pytest.mark.parametrize(("label", "call"), paths("hamming"), ids=[p[0] for p in paths("hamming")])
def test_hamming_scale_must_keep_the_logits_finite(label, call) -> None:
    sample = get_form("hamming").sample(0, Shape())
    rejects(call, *sample.args, scale=1e308, top_n=2, match=r"\bscale\b", error=ValueError)


@pytest.mark.parametrize(("label", "call"), HAMMING_FORWARD, ids=[p[0] for p in HAMMING_FORWARD])
def test_hamming_ties_at_a_very_large_scale_agree_with_the_reference(label, call) -> None:
    """At σ = 1e300 the weights are exactly uniform over the nearest codes; exact integer ties split them
    the same way on every path."""
    q = np.ones((1, 1, 2, 4))
    k = np.array([[1.0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, -1], [-1, -1, -1, -1]])[None, None]
    v = np.arange(8.0).reshape(1, 1, 4, 2)
    want = np.broadcast_to(v[..., :2, :].mean(-2, keepdims=True), (1, 1, 2, 2))
    for top_n in (None, 1, 2):
        got = call(q, k, v, scale=1e300, top_n=top_n)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, err_msg=f"{label}, top_n={top_n}")


@pytest.mark.parametrize("name", [f.name for f in all_forms()])
def test_every_path_of_every_form_reports_overflow_by_name(name) -> None:
    """Declaration completeness: the reference, each fast path and each VJP of every form is wrapped by
    the overflow check of :mod:`attnlab.validation` (or its torch form)."""
    form = get_form(name)
    unchecked = [] if is_checked(form.reference) else ["reference"]
    for path in form.fast_paths:
        unchecked += [] if is_checked(path.load()) else [path.name]
        if path.vjp:
            unchecked += [] if is_checked(path.load_vjp()) else [f"{path.name}-vjp"]
    assert not unchecked, f"{name}: {unchecked} return NaN/Inf for overflowing inputs instead of naming them"

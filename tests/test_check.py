"""``attnlab check`` on real kernels: SDPA passes as softmax; known mistakes fail with their diagnosis."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from attnlab.cli import build_app
from attnlab.testing import check_kernel, kernel_cases

torch.set_num_threads(1)
TOP_LEFT = "matches top-left causal alignment"


def test_sdpa_passes_as_softmax_with_the_sdpa_convention() -> None:
    report = check_kernel(F.scaled_dot_product_attention, form="softmax", convention="sdpa")
    assert report.passed, [(r.sample, r.max_abs_error, r.bound) for r in report.failures]
    labels = {r.sample for r in report.rows}
    # the adversarial samples are all there: length 1, GQA, m != n both ways, masks, large and tied values, tiles
    for part in ("n1-", "Hkv2", "-m9-", "-m5-", "mask", "large", "tied", "n257"):
        assert any(part in label for label in labels), part


def test_sdpa_with_is_causal_on_m_not_n_fails_with_the_alignment_diagnosis() -> None:
    report = check_kernel(F.scaled_dot_product_attention, form="softmax", convention="sdpa", causal_as="flag")
    assert not report.passed
    for row in report.failures:
        assert "causal" in row.sample and TOP_LEFT in row.diagnosis, row
        assert row.first_index is not None
    square_causal = [r for r in report.rows if "causal" in r.sample and not re.search(r"-m\d", r.sample)]
    assert square_causal and all(r.passed for r in square_causal)


def _nan_on_empty_rows(q, k, v, *, scale=None, causal=False, mask=None):
    """Plain masked softmax without an empty-row guard: 0/0 on rows that see no key."""
    group = q.shape[-3] // k.shape[-3]
    k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
    scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    n, m = q.shape[-2], k.shape[-2]
    allowed = torch.ones(n, m, dtype=torch.bool).tril(m - n) if causal else torch.ones(n, m, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & mask
    return torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1) @ v


def _ignores_scale(q, k, v, *, scale=None, causal=False, mask=None):
    from attnlab.fastpath.torch.softmax import softmax_attention

    return softmax_attention(q, k, v, causal=causal, mask=mask)


@pytest.mark.parametrize(
    ("kernel", "diagnosis"),
    [(_nan_on_empty_rows, "NaN on rows with no visible key"), (_ignores_scale, "ignores the explicit scale")],
    ids=["nan-on-empty-rows", "ignores-scale"],
)
def test_known_mistakes_are_named(kernel, diagnosis: str) -> None:
    report = check_kernel(kernel, form="softmax")
    assert not report.passed
    assert any(diagnosis in row.diagnosis for row in report.failures), [r.diagnosis for r in report.failures]


def test_flash_layout_and_numpy_arrays_are_adapter_options() -> None:
    from attnlab.fastpath.numba.softmax import softmax_attention as numba_softmax
    from attnlab.fastpath.torch.softmax import softmax_attention as torch_softmax

    def flash_layout(q, k, v, **kwargs):  # (B, n, H, d) in and out
        return torch_softmax(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), **kwargs).transpose(1, 2)

    assert check_kernel(flash_layout, form="softmax", layout="bnhd", samples=8).passed
    assert not check_kernel(flash_layout, form="softmax", samples=8).passed  # called in the wrong layout
    assert check_kernel(numba_softmax, form="softmax", arrays="numpy", samples=8).passed


def test_gradients_are_checked_with_grad() -> None:
    report = check_kernel(F.scaled_dot_product_attention, form="softmax", convention="sdpa", grad=True, samples=4)
    assert report.passed and {r.output for r in report.rows} >= {"out", "d/dq", "d/dk", "d/dv"}

    def no_key_gradient(q, k, v, **kwargs):
        return F.scaled_dot_product_attention(q, k.detach(), v, **kwargs)

    report = check_kernel(no_key_gradient, form="softmax", convention="sdpa", grad=True, samples=4)
    assert not report.passed and all(r.output == "d/dk" for r in report.failures)


def test_cli_exit_codes_json_and_table() -> None:
    runner = CliRunner()
    ok = runner.invoke(
        build_app(),
        [
            "check",
            "torch.nn.functional:scaled_dot_product_attention",
            "--form",
            "softmax",
            "--convention",
            "sdpa",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["passed"] is True
    bad = runner.invoke(
        build_app(),
        [
            "check",
            "torch.nn.functional:scaled_dot_product_attention",
            "--form",
            "softmax",
            "--convention",
            "sdpa",
            "--causal-as",
            "flag",
        ],
        env={"COLUMNS": "220"},
    )
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "top-left" in bad.output


@pytest.mark.parametrize(
    "args",
    [
        ["torch.nn.functional:scaled_dot_product_attention", "--form", "nosuch"],
        ["torch.nn.functional:scaled_dot_product_attention", "--form", "softmax", "--dtype", "int8"],
        ["torch.nn.functional:scaled_dot_product_attention", "--form", "softmax", "--layout", "hbnd"],
        ["torch.nn.functional:scaled_dot_product_attention", "--form", "softmax", "--samples", "0"],
        ["no_such_module_xyz:fn", "--form", "softmax"],
        ["torch.nn.functional", "--form", "softmax"],
    ],
    ids=["form", "dtype", "layout", "samples", "module", "no-colon"],
)
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(build_app(), ["check", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


CASES = kernel_cases("softmax", convention="sdpa")


@pytest.mark.parametrize("case", CASES[:6], ids=str)
def test_kernel_cases_in_a_users_pytest_suite(case) -> None:
    case.check(F.scaled_dot_product_attention)


def test_a_failing_case_raises_with_the_diagnosis() -> None:
    causal_cross = next(
        c
        for c in kernel_cases("softmax", convention="sdpa", causal_as="flag")
        if "causal" in str(c) and "mask" not in str(c) and re.search(r"-m\d", str(c))
    )
    with pytest.raises(AssertionError, match=TOP_LEFT):
        causal_cross.check(F.scaled_dot_product_attention)

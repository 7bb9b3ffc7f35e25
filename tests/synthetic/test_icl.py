"""In-context regression (He et al. 2025): generator, closed-form baselines, model, patterns, training."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.synthetic.analysis.patterns import debiased_gd_weights, extract_patterns
from attnlab.synthetic.base import config_hash, no_progress
from attnlab.synthetic.icl import (
    ICLConfig,
    configs,
    gd_direction,
    grid_search_eta,
    ridge_predict,
    run,
    sample_prompts,
    smoke_configs,
    summarize,
)
from attnlab.synthetic.models import QueryAttention, stream_generator

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- data generator


def test_labels_are_linear_in_covariates_without_noise() -> None:
    prompts = sample_prompts(64, 12, 5, 0.0, stream_generator(3, 0))
    expected = torch.einsum("bld,bd->bl", prompts.x, prompts.beta)
    torch.testing.assert_close(prompts.y, expected)
    torch.testing.assert_close(prompts.y_query, torch.einsum("bd,bd->b", prompts.x_query, prompts.beta))


def test_noise_and_prior_have_the_papers_variances() -> None:
    prompts = sample_prompts(20000, 8, 5, 0.1, stream_generator(0, 0))
    residual = prompts.y - torch.einsum("bld,bld->bl", prompts.x, prompts.beta[:, None, :].expand_as(prompts.x))
    # 160k noise draws: the variance estimate has relative std ~0.35%; β entries: 100k draws of var 1/d.
    assert float(residual.double().var()) == pytest.approx(0.1, rel=0.02)
    assert float(prompts.beta.double().var()) == pytest.approx(1 / 5, rel=0.02)
    assert float(prompts.x.double().var()) == pytest.approx(1.0, rel=0.02)


def test_tokens_put_labels_last_and_zero_the_query_label() -> None:
    prompts = sample_prompts(4, 6, 3, 0.1, stream_generator(1, 0))
    context, query = prompts.tokens()
    assert context.shape == (4, 6, 4) and query.shape == (4, 4)
    torch.testing.assert_close(context[..., -1], prompts.y)
    torch.testing.assert_close(context[..., :-1], prompts.x)
    assert torch.all(query[:, -1] == 0)
    torch.testing.assert_close(query[:, :-1], prompts.x_query)


def test_build_is_deterministic_by_seed_and_streams_do_not_overlap() -> None:
    cfg = ICLConfig(eval_prompts=300, eval_lengths=(10, 40), batch=32)
    first, again, other = cfg.build(5), cfg.build(5), cfg.build(6)
    torch.testing.assert_close(first.eval_prompts.x, again.eval_prompts.x, rtol=0, atol=0)
    torch.testing.assert_close(first.train_batch().y, again.train_batch().y, rtol=0, atol=0)
    assert not torch.allclose(first.eval_prompts.beta, other.eval_prompts.beta)
    # No leakage: no task vector of the first training batches or the tuning set is an evaluation task.
    eval_betas = first.eval_prompts.beta
    for candidate in (*(first.train_batch().beta for _ in range(3)), first.tune_prompts.beta):
        distances = torch.cdist(candidate.double(), eval_betas.double())
        assert float(distances.min()) > 1e-6


def test_prefix_keeps_prompts_and_queries() -> None:
    prompts = sample_prompts(5, 30, 2, 0.1, stream_generator(0, 1))
    short = prompts.prefix(10)
    torch.testing.assert_close(short.x, prompts.x[:, :10])
    torch.testing.assert_close(short.y_query, prompts.y_query)
    with pytest.raises(ValueError, match="length"):
        prompts.prefix(31)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"model": "mamba"}, "model"), ({"experiment": "other"}, "experiment"), ({"dim": 0}, "positive"),
     ({"eval_lengths": ()}, "eval_lengths")],
)
def test_bad_configs_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ICLConfig(**kwargs)


def test_sample_prompts_rejects_negative_noise() -> None:
    with pytest.raises(ValueError, match="noise_var"):
        sample_prompts(2, 3, 2, -0.1, stream_generator(0, 0))


# ----------------------------------------------------------------------------- closed-form baselines


def test_gd_and_debiased_gd_match_explicit_sums() -> None:
    prompts = sample_prompts(6, 9, 4, 0.1, stream_generator(2, 1))
    x, y, xq = (t.double().numpy() for t in (prompts.x, prompts.y, prompts.x_query))
    for b in range(6):
        plain = sum(y[b, l] * x[b, l] @ xq[b] for l in range(9)) / 9
        centred = sum(y[b, l] * (x[b, l] - x[b].mean(axis=0)) @ xq[b] for l in range(9)) / 9
        assert float(gd_direction(prompts)[b]) == pytest.approx(plain, rel=1e-12)
        assert float(gd_direction(prompts, debiased=True)[b]) == pytest.approx(centred, rel=1e-12)


def test_ridge_is_the_posterior_mean_and_the_lower_bound() -> None:
    prompts = sample_prompts(4000, 10, 5, 0.1, stream_generator(4, 1))
    lam = 0.1 * 5
    prediction = ridge_predict(prompts, lam)
    x, y, xq = (t.double().numpy() for t in (prompts.x, prompts.y, prompts.x_query))
    for b in range(3):
        beta = np.linalg.lstsq(np.vstack([x[b], math.sqrt(lam) * np.eye(5)]), np.concatenate([y[b], np.zeros(5)]),
                               rcond=None)[0]
        assert float(prediction[b]) == pytest.approx(float(beta @ xq[b]), rel=1e-10)
    target = prompts.y_query.double()
    ridge_mse = float(((prediction - target) ** 2).mean())
    eta = grid_search_eta(prompts, tuple(np.linspace(0.05, 2, 40)))
    gd_mse = float(((eta * gd_direction(prompts) - target) ** 2).mean())
    ols_mse = float(((ridge_predict(prompts, 1e-9) - target) ** 2).mean())
    assert ridge_mse < gd_mse and ridge_mse < ols_mse


def test_grid_search_finds_the_least_squares_step_size() -> None:
    prompts = sample_prompts(3000, 40, 5, 0.1, stream_generator(7, 2))
    direction, target = gd_direction(prompts), prompts.y_query.double()
    best = float((direction @ target) / (direction @ direction))
    grid = tuple(float(v) for v in np.round(np.linspace(0.01, 2.0, 200), 4))
    assert abs(grid_search_eta(prompts, grid) - best) <= 0.01


# ----------------------------------------------------------------------------- model and patterns


def test_query_attention_matches_an_explicit_loop() -> None:
    gen = stream_generator(0, 5)
    model = QueryAttention(4, 3, generator=gen).double()
    context, query = torch.randn(2, 7, 4, generator=gen).double(), torch.randn(2, 4, generator=gen).double()
    out = model(context, query)
    with torch.no_grad():
        for b in range(2):
            total = 0.0
            for h in range(3):
                kq = model.key_proj[h].T @ model.query_proj[h]
                weights = torch.softmax(context[b] @ kq @ query[b] / 2.0, dim=0)
                total += float(model.output_proj[h] @ model.value_proj[h] @ context[b].T @ weights)
            assert float(out[b]) == pytest.approx(total, rel=1e-12)


def test_low_rank_scores_have_the_requested_rank_and_bilinear_is_full_rank() -> None:
    low = QueryAttention(9, 2, qk_rank=3, generator=stream_generator(0, 6))
    full = QueryAttention(9, 2, score_form="bilinear", generator=stream_generator(0, 6))
    assert [int(torch.linalg.matrix_rank(w)) for w in low.score_matrices().detach()] == [3, 3]
    assert [int(torch.linalg.matrix_rank(w)) for w in full.score_matrices().detach()] == [9, 9]
    assert full.forward_flops(32) < low.forward_flops(32) * 9 / 3


def test_query_attention_rejects_bad_shapes() -> None:
    model = QueryAttention(4, 1)
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(2, 3, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="query"):
        model(torch.zeros(2, 3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="qk_rank"):
        QueryAttention(4, 1, qk_rank=5)


def _load_weights(kq: np.ndarray, ov: np.ndarray) -> QueryAttention:
    heads, width, _ = kq.shape
    model = QueryAttention(width, heads, score_form="bilinear").double()
    with torch.no_grad():
        model.bilinear.copy_(torch.from_numpy(kq))
        model.value_proj.copy_(torch.eye(width, dtype=torch.float64).expand(heads, width, width))
        model.output_proj.copy_(torch.from_numpy(ov))
    return model


def test_zero_sum_two_head_layer_is_a_debiased_gd_step() -> None:
    # First-order expansion: prediction = (Σμ)ȳ + (Σ μ_h ω_h) · debiased-GD direction + O(ω²).
    omega, mu = 0.01, 3.0
    kq, ov = debiased_gd_weights(omega, mu, covariate_dims=5)
    prompts = sample_prompts(500, 40, 5, 0.1, stream_generator(8, 1))
    context, query = prompts.tokens()
    prediction = _load_weights(kq, ov)(context.double(), query.double()).detach()
    expected = 2 * mu * omega * gd_direction(prompts, debiased=True)
    relative = float((prediction - expected).norm() / expected.norm())
    assert relative < 0.05
    patterns = extract_patterns(kq, ov, covariate_dims=5)
    assert patterns.implied_eta == pytest.approx(2 * mu * omega)
    assert patterns.kq_offdiag_ratio == [0.0, 0.0] and patterns.zero_sum_ratio == 0.0
    assert patterns.omega == pytest.approx([omega, -omega]) and min(patterns.ov_last_ratio) > 1e6


@given(
    noise=st.floats(0.01, 0.5),
    leak=st.floats(0.01, 0.5),
    seed=st.integers(0, 2**16),
)
def test_pattern_statistics_measure_what_they_claim(noise: float, leak: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kq, ov = debiased_gd_weights(0.2, 2.0, covariate_dims=4)
    diag = 0.2 * math.sqrt(5)
    perturbation = noise * diag * rng.uniform(-1, 1, size=(2, 4, 4))
    np.einsum("hii->hi", perturbation)[:] = 0.0
    kq[:, :4, :4] += perturbation
    ov[:, :4] = leak * 2.0 * rng.uniform(-1, 1, size=(2, 4))
    patterns = extract_patterns(kq, ov, covariate_dims=4)
    for h in range(2):
        assert patterns.kq_offdiag_ratio[h] == pytest.approx(np.abs(perturbation[h]).max() / diag)
        assert patterns.ov_last_ratio[h] == pytest.approx(2.0 / np.abs(ov[h, :4]).max())
    assert patterns.zero_sum_ratio == pytest.approx(0.0, abs=1e-12)


def test_extract_patterns_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="kq"):
        extract_patterns(np.zeros((2, 3, 4)), np.zeros((2, 3)), covariate_dims=2)
    with pytest.raises(ValueError, match="covariate_dims"):
        extract_patterns(np.zeros((1, 3, 3)), np.zeros((1, 3)), covariate_dims=3)


# ----------------------------------------------------------------------------- training


def _tiny(model: str, heads: int) -> ICLConfig:
    # 800 Adam steps at 5e-3 are enough for the two heads to split into the (+ω, +μ), (−ω, −μ) pair.
    return ICLConfig(model=model, heads=heads, steps=800, lr=5e-3, batch=256, eval_prompts=2000,
                     eval_lengths=(20, 40, 100), checkpoint_every=100)


def test_trained_two_heads_beat_one_head_and_track_gd(tmp_path: Path) -> None:
    metrics = {name: run(_tiny(*name), 0, no_progress, tmp_path / f"{name}") for name in
               [("softmax", 1), ("softmax", 2)]}
    baselines = run(replace(_tiny("softmax", 1), model="baselines"), 0, no_progress, tmp_path / "b")
    h1, h2 = metrics["softmax", 1]["loss"]["40"], metrics["softmax", 2]["loss"]["40"]
    gd, ridge = baselines["loss"]["gd"]["40"], baselines["loss"]["ridge"]["40"]
    assert h2 < h1 - 0.05
    assert ridge < h2 < gd + 0.05
    patterns = metrics["softmax", 2]["patterns"]
    assert patterns["omega"][0] * patterns["omega"][1] < 0
    assert patterns["zero_sum_ratio"] < 0.2


def test_interrupted_training_resumes_bitwise(tmp_path: Path) -> None:
    cfg = replace(_tiny("softmax", 2), steps=60, checkpoint_every=20, eval_prompts=200)
    reference = run(cfg, 1, no_progress, tmp_path / "straight")

    class Interrupt(Exception):
        pass

    def stop_halfway(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(cfg, 1, stop_halfway, tmp_path / "resumed")
    resumed = run(cfg, 1, no_progress, tmp_path / "resumed")
    assert resumed["loss"] == reference["loss"]
    assert resumed["kq"] == reference["kq"]
    assert resumed["train_loss_history"] == reference["train_loss_history"]


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
def test_a_corrupt_checkpoint_is_moved_aside_and_training_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    cfg = replace(_tiny("softmax", 2), steps=20, checkpoint_every=10, eval_prompts=200)
    reference = run(cfg, 2, no_progress, tmp_path / "straight")
    run(cfg, 2, no_progress, tmp_path / "damaged")
    checkpoint = tmp_path / "damaged" / f"{cfg.name}.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00\xffnot torch"}[how])
    with caplog.at_level("WARNING", logger="attnlab"):
        again = run(cfg, 2, no_progress, tmp_path / "damaged")
    (message,) = [r.getMessage() for r in caplog.records if r.name == "attnlab.cache"]
    assert str(checkpoint) in message
    assert len(list(checkpoint.parent.glob(f"{checkpoint.name}.corrupt-*"))) == 1
    assert again == reference


def test_experiment_declares_the_papers_toy_and_the_bottleneck() -> None:
    full, quick = configs(False), configs(True)
    length = [c for c in full if c.experiment == "length"]
    assert {c.name for c in length} == {"softmax_h1", "softmax_h2", "softmax_h4", "linear_h1", "baselines"}
    assert all((c.dim, c.train_length, c.noise_var, c.batch, c.lr) == (5, 40, 0.1, 256, 1e-3) for c in length)
    assert all(c.eval_lengths == tuple(range(10, 101, 10)) for c in length)
    bottleneck = {c.name: c for c in full if c.experiment == "bottleneck"}
    assert bottleneck["lowrank_r4_h2"].qk_rank is not None and bottleneck["lowrank_r4_h2"].qk_rank < 16
    assert len({config_hash(c) for c in full + quick}) == len(full) + len(quick)
    assert all(c.steps >= 3000 for c in length + [c for c in quick if c.experiment == "length"])
    assert len(smoke_configs(True)) >= 6


def test_summary_reports_each_criterion_beside_its_threshold() -> None:
    cfg = {name: ICLConfig(model=m, heads=h, eval_lengths=(40, 80)) for name, (m, h) in
           {"softmax_h1": ("softmax", 1), "softmax_h2": ("softmax", 2), "linear_h1": ("linear", 1)}.items()}
    kq, ov = debiased_gd_weights(0.1, 3.0, covariate_dims=5)
    patterns = extract_patterns(kq, ov, covariate_dims=5).to_dict()
    results = [
        (cfg["softmax_h1"], 0, {"loss": {"40": 0.40, "80": 0.30}, "patterns": patterns}),
        (cfg["softmax_h2"], 0, {"loss": {"40": 0.25, "80": 0.19}, "patterns": patterns}),
        (cfg["linear_h1"], 0, {"loss": {"40": 0.24, "80": 0.60}, "patterns": patterns}),
        (ICLConfig(model="baselines"), 0, {"loss": {"gd": {"40": 0.24, "80": 0.18},
                                                    "debiased_gd": {"40": 0.245, "80": 0.18},
                                                    "ridge": {"40": 0.11, "80": 0.10}}, "eta": 0.86}),
    ]
    summary = summarize(results)
    crit = summary["criteria"]
    assert summary["loss"]["softmax_h2"] == {"40": 0.25, "80": 0.19}
    assert crit["h2_minus_gd_abs_at_L40"]["measured"] == pytest.approx(0.01)
    assert crit["h2_minus_gd_abs_at_L40"]["passed"]
    assert crit["h1_minus_h2_at_L40"]["measured"] == pytest.approx(0.15) and crit["h1_minus_h2_at_L40"]["passed"]
    assert crit["linear_min_ratio_L80plus_to_L40"]["measured"] == pytest.approx(2.5)
    assert not crit["linear_min_ratio_L80plus_to_L40"]["passed"]
    assert not summary["reproduced"]

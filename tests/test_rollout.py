"""The chained-segment loss (gicnet_train.rollout), successors of pairs and fine-tuning
(fit's init_from), on real GFN2-xTB ethanol MD."""

import dataclasses
import json

import pytest
import torch

from gicnet_runtime.errors import InputError
from gicnet_train import geometry as geo
from gicnet_train.config import EnergyTrainConfig, TrainConfig
from gicnet_train.fit import fit
from gicnet_train.icbuild import build_icdef
from gicnet_train.loss import total_loss
from gicnet_train.model import GICnet, ModelConfig
from gicnet_train.pairs import build_pairs, split_by_trajectory, successors
from gicnet_train.rollout import chained, restart, rollout_term
from gicnet_train.train import batch_terms

#: float32 pairs: the round trip through Cartesians and a new body frame agrees to this, Å
#: and rad (and per fs for the rates).
ROUND_TRIP_ATOL = 2e-4
TINY = TrainConfig(
    model=ModelConfig(hidden=(64, 64, 32), n_basis=8),
    energy=EnergyTrainConfig(hidden=(64, 64), epochs=1, batch_size=32, lr=1e-3, frame_stride=1),
    epochs=2, batch_size=64, lr=3e-3, warmup_steps=20, stride=2, seed=3, patience=0)


def with_weights(cfg: TrainConfig, **weights) -> TrainConfig:
    return dataclasses.replace(cfg, weights=dataclasses.replace(cfg.weights, **weights))


@pytest.fixture(scope="module")
def setup(short_md):
    first = short_md[0]
    icdef = build_icdef(first.positions[0], first.atomic_numbers, first.masses)
    pairs = build_pairs(short_md[:2], icdef, 10.0, stride=4)
    torch.manual_seed(0)
    model = GICnet(icdef, first.masses, TINY.model)
    for p in model.parameters():  # a non-trivial network output
        p.data.normal_(0.0, 0.1)
    model.set_scaling(pairs.q0, pairs.q0_dot, pairs.q[:, -1])
    return icdef, pairs, model


def test_the_successor_starts_where_a_pair_ends(setup):
    _, pairs, _ = setup
    nxt = successors(pairs, 4)
    has = nxt >= 0
    # K = 20 frames of 0.5 fs, stride 4: the pair 5 further on starts at this one's tc.
    assert torch.equal(pairs.positions0[nxt[has]], pairs.positions[has, -1])
    assert torch.equal(pairs.trajectory[nxt[has]], pairs.trajectory[has])
    for k in (0, 1):  # the last 5 starts of each trajectory have no successor
        assert int((~has & (pairs.trajectory == k)).sum()) == 5
    _, val = split_by_trajectory(pairs, [0])
    later = successors(val, 4)
    assert torch.equal(val.positions0[later[later >= 0]], val.positions[later >= 0, -1])
    with pytest.raises(InputError, match="not a multiple of the stride"):
        successors(pairs, 3)


def test_restarting_from_the_reference_end_state_gives_the_next_pairs_start(setup):
    """The end state in the first pair's body frame, through Cartesians into its own frame,
    is the successor's initial state (its dihedrals on the successor's branch)."""
    icdef, pairs, model = setup
    nxt = successors(pairs, 4)
    rows = torch.nonzero(nxt >= 0).squeeze(1)
    q1, q1_dot = restart(pairs.q[rows, -1], pairs.q_dot[rows, -1], model.masses, icdef,
                         pairs.q0[nxt[rows]][..., geo.DIHEDRAL])
    # The frames differ: a start's coordinates relative to the dummy points are not the
    # previous pair's (the molecule turned in 10 fs), so this is not a copy.
    assert (pairs.q[rows, -1] - pairs.q0[nxt[rows]]).abs().max() > 10 * ROUND_TRIP_ATOL
    torch.testing.assert_close(q1, pairs.q0[nxt[rows]], atol=ROUND_TRIP_ATOL, rtol=0)
    torch.testing.assert_close(q1_dot, pairs.q0_dot[nxt[rows]], atol=ROUND_TRIP_ATOL, rtol=0)


def test_the_rollout_from_the_reference_end_is_the_next_pairs_loss(setup):
    """Started from the reference's end state, the second segment is the model's prediction
    for the successor pair: the term equals that pair's loss (coordinates, rates and
    amplitudes, without energy)."""
    _, pairs, model = setup
    cfg = with_weights(TINY, amplitude=2.0)
    nxt = successors(pairs, 4)
    rows = torch.nonzero(nxt >= 0).squeeze(1)[:16]
    term = rollout_term(model, pairs, pairs.q[rows, -1], pairs.q_dot[rows, -1], nxt[rows],
                        cfg.weights, torch.ones(len(pairs.times)))
    direct = total_loss(batch_terms(model, pairs, nxt[rows], cfg, None), cfg.weights)
    assert term.item() == pytest.approx(direct.item(), rel=2e-3)


def test_the_rollout_term_starts_from_the_models_own_prediction(setup):
    """batch_terms' "rollout" uses the model's state at tc for the rows with a successor
    (those without are left out), whether all target times or a sample were scored; it
    joins the loss with its weight and trains the first segment too."""
    _, pairs, model = setup
    cfg = with_weights(TINY, rollout=0.5)
    nxt = successors(pairs, 4)
    idx = torch.cat([torch.arange(0, 6), torch.nonzero(nxt < 0).squeeze(1)[:3]])
    terms = batch_terms(model, pairs, idx, cfg, None, following=nxt)
    keep = idx[nxt[idx] >= 0]
    q, q_dot = model.internal(pairs.q0[keep], pairs.q0_dot[keep],
                              pairs.times[-1:].expand(len(keep), 1))
    expected = rollout_term(model, pairs, q[:, 0], q_dot[:, 0], nxt[keep], cfg.weights,
                            torch.ones(len(pairs.times)))
    assert terms["rollout"].item() == pytest.approx(expected.item(), rel=1e-5)
    sampled = batch_terms(model, pairs, idx, cfg, None,
                          time_idx=torch.tensor([[0, 4]]).expand(len(idx), -1), following=nxt)
    assert sampled["rollout"].item() == pytest.approx(expected.item(), rel=1e-5)
    without = {k: v for k, v in terms.items() if k != "rollout"}
    assert total_loss(terms, cfg.weights).item() == pytest.approx(
        total_loss(without, cfg.weights).item() + 0.5 * terms["rollout"].item(), rel=1e-6)
    assert "rollout" not in batch_terms(model, pairs, idx, TINY, None, following=nxt)
    # The end state's error carries into the second segment: its gradient reaches q_end.
    q_end = q[:, 0].detach().requires_grad_(True)
    rollout_term(model, pairs, q_end, q_dot[:, 0], nxt[keep], cfg.weights,
                 torch.ones(len(pairs.times))).backward()
    assert torch.isfinite(q_end.grad).all() and q_end.grad.abs().max() > 0



def test_rollout_rows_score_the_first_rows_with_a_successor(setup):
    """rollout_rows = k: the term of the batch's first k rows that have a successor (rows
    without one are skipped, not counted), the same as a batch of those rows alone."""
    _, pairs, model = setup
    cfg = with_weights(TINY, rollout=1.0)
    nxt = successors(pairs, 4)
    without = torch.nonzero(nxt < 0).squeeze(1)
    idx = torch.cat([without[:2], torch.arange(0, 8), without[2:4]])
    some = batch_terms(model, pairs, idx, cfg, None, following=nxt, rollout_rows=3)
    alone = batch_terms(model, pairs, torch.arange(0, 3), cfg, None, following=nxt)
    assert some["rollout"].item() == pytest.approx(alone["rollout"].item(), rel=1e-5)
    every = batch_terms(model, pairs, idx, cfg, None, following=nxt)
    assert abs(every["rollout"].item() - some["rollout"].item()) > 1e-6
    assert batch_terms(model, pairs, idx, cfg, None, following=nxt, rollout_rows=100)[
        "rollout"].item() == pytest.approx(every["rollout"].item(), rel=1e-6)


def test_chained_successors_follow_the_trajectory_until_it_ends(setup):
    """chained: row s holds the pair that starts (s + 1) tc later on the same trajectory, -1
    once the trajectory ends (stride 4, K = 20: 5 pairs per tc)."""
    _, pairs, _ = setup
    nxt = successors(pairs, 4)
    idx = torch.arange(len(pairs))
    chain = chained(nxt, idx, 3)
    assert chain.shape == (3, len(pairs))
    assert torch.equal(chain[0], nxt)
    for s in range(3):
        has = chain[s] >= 0
        assert torch.equal(chain[s][has], idx[has] + 5 * (s + 1))
        assert torch.equal(pairs.trajectory[chain[s][has]], pairs.trajectory[has])
        for k in (0, 1):  # the last 5 (s + 1) starts of each trajectory lack this one
            assert int((~has & (pairs.trajectory == k)).sum()) == 5 * (s + 1)


def test_more_chained_segments_start_each_from_the_previous_prediction(setup):
    """rollout_segments = 2: the term is the mean of the second segment's loss (from the
    given end state) and the third's, started from the second's predicted end; batch_terms
    scores only rows whose trajectory continues two segments, from the model's state at
    tc."""
    _, pairs, model = setup
    cfg = dataclasses.replace(with_weights(TINY, rollout=1.0), rollout_segments=2)
    nxt = successors(pairs, 4)
    second_successor = chained(nxt, torch.arange(len(pairs)), 2)[1]
    rows = torch.nonzero(second_successor >= 0).squeeze(1)[:12]
    chain = chained(nxt, rows, 2)
    ones = torch.ones(len(pairs.times))
    q_end, q_dot_end = pairs.q[rows, -1], pairs.q_dot[rows, -1]
    first = rollout_term(model, pairs, q_end, q_dot_end, chain[0], cfg.weights, ones)
    q1, q1_dot = restart(q_end, q_dot_end, model.masses, model.icdef,
                         pairs.q0[chain[0]][..., geo.DIHEDRAL])
    q, q_dot = model.internal(q1, q1_dot, pairs.times.expand(len(rows), -1))
    second = rollout_term(model, pairs, q[:, -1], q_dot[:, -1], chain[1], cfg.weights, ones)
    both = rollout_term(model, pairs, q_end, q_dot_end, chain, cfg.weights, ones)
    assert both.item() == pytest.approx((first.item() + second.item()) / 2, rel=1e-5)
    assert abs(second.item() - first.item()) > 1e-4 * first.item()
    # In a batch: rows with only one successor are left out.
    one_only = torch.nonzero((nxt >= 0) & (second_successor < 0))
    idx = torch.cat([rows[:4], one_only.squeeze(1)[:3]])
    terms = batch_terms(model, pairs, idx, cfg, None, following=nxt)
    alone = batch_terms(model, pairs, rows[:4], cfg, None, following=nxt)
    assert terms["rollout"].item() == pytest.approx(alone["rollout"].item(), rel=1e-5)
    single = batch_terms(model, pairs, rows[:4], with_weights(TINY, rollout=1.0), None,
                         following=nxt)
    assert abs(single["rollout"].item() - alone["rollout"].item()) > 1e-6


def test_fine_tuning_starts_from_the_given_runs_members(short_md, tmp_path):
    """init_from: each member starts from that run's best weights and reuses its energy
    model; with a learning rate of ~0 the fine-tuned member validates as its start did."""
    first = fit(short_md, tmp_path / "a", TINY, n_members=1, device="cpu", progress=False)
    cfg = with_weights(dataclasses.replace(TINY, epochs=1, lr=1e-12, lr_min=0.0), rollout=1.0)
    tuned = fit(short_md, tmp_path / "b", cfg, n_members=1, device="cpu", progress=False,
                init_from=tmp_path / "a")
    before, after = first["members"][0]["validation"], tuned["members"][0]["validation"]
    for key in ("bond_rmse", "angle_rmse", "dihedral_rmse", "cartesian_rmsd_at_tc_A"):
        assert after[key] == pytest.approx(before[key], rel=1e-4)
    assert (tmp_path / "b/energy/model.pt").read_bytes() == \
        (tmp_path / "a/energy/model.pt").read_bytes()
    run = json.loads((tmp_path / "b/run.json").read_text())
    assert run["init_from"] == str(tmp_path / "a")
    history = json.loads((tmp_path / "b/member_0/history.json").read_text())
    assert history[0]["rollout"] > 0
    other = dataclasses.replace(TINY, model=ModelConfig(hidden=(32,), n_basis=8))
    with pytest.raises(InputError, match="model, seed and validation split"):
        fit(short_md, tmp_path / "c", other, n_members=1, device="cpu", progress=False,
            init_from=tmp_path / "a")
    with pytest.raises(InputError, match="holds no training run"):
        fit(short_md, tmp_path / "d", TINY, n_members=1, device="cpu", progress=False,
            init_from=tmp_path / "c")

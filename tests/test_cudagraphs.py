"""``cudagraphs=true``: the TD3 and SAC updates captured as CUDA graphs (tensordict's ``CudaGraphModule``).

On the CPU, where ``CudaGraphModule`` runs every call eagerly, a learner built with ``cudagraphs=True`` must give
the same parameters and losses, bit for bit, as one built without: the graphed steps hold the same arithmetic in
the same order. On a CUDA machine the graphs are captured and replayed: the replayed updates must follow the eager
ones, and the recipe runs end to end with them; those tests are skipped elsewhere."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch.utils._pytree import SUPPORTED_NODES
from torchrl.data import Bounded

from tests.test_hostile_inputs import expect_one_line_exit_2
from trl_accel import keys
from trl_accel.config import ConfigError, validate_config
from trl_accel.experiment import run_experiment
from trl_accel.modules import make_mlp_actor, make_transformer_actor, make_twin_q_critics
from trl_accel.stages.actor_critic import CUDA_GRAPH_WARMUP
from trl_accel.stages.learners import make_learner

OBS, ACT, K, BATCH = 5, 2, 3, 32
#: Updates per comparison: past the warm-up, so that on CUDA the later ones replay the captured graphs.
UPDATES = CUDA_GRAPH_WARMUP + 4
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def pytree_registry_restored():
    """``CudaGraphModule`` takes TensorDict out of torch's pytree registry for the whole process; put it back after
    each test, so that the rest of the suite runs as it does without these tests."""
    saved = dict(SUPPORTED_NODES)
    yield
    for node_type, node in saved.items():
        SUPPORTED_NODES.setdefault(node_type, node)


def spec(device: str) -> Bounded:
    return Bounded(-torch.ones(ACT, device=device), torch.ones(ACT, device=device), shape=(ACT,), device=device)


def batches(device: str, actor: str) -> list[TensorDict]:
    """``UPDATES`` replay-like batches of ``BATCH`` transitions (with windows for the transformer)."""
    generator = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    out = []
    for _ in range(UPDATES):
        batch = TensorDict({
            keys.OBSERVATION: rand(BATCH, OBS), keys.ACTION: rand(BATCH, ACT).clamp(-1, 1),
            "next": {keys.OBSERVATION: rand(BATCH, OBS), keys.REWARD: rand(BATCH, 1),
                     keys.DONE: torch.zeros(BATCH, 1, dtype=torch.bool, device=device),
                     keys.TERMINATED: torch.zeros(BATCH, 1, dtype=torch.bool, device=device)},
        }, batch_size=[BATCH], device=device)
        if actor == "transformer":
            for root in ((), ("next",)):
                batch[(*root, keys.OBSERVATION_WINDOW)] = rand(BATCH, K, OBS)
                batch[(*root, keys.WINDOW_MASK)] = torch.ones(BATCH, K, dtype=torch.bool, device=device)
        out.append(batch)
    return out


def learner(algorithm: str, actor: str, device: str, cudagraphs: bool):
    """A small TD3 or SAC learner (MLP or transformer actor, MLP twin critics), the same weights for any flag."""
    torch.manual_seed(0)
    stochastic = algorithm == "sac"
    if actor == "mlp":
        policy = make_mlp_actor(OBS, spec(device), hidden_sizes=(16,), stochastic=stochastic)
    else:
        policy = make_transformer_actor(OBS, spec(device), context_len=K, d_model=16, d_ff=32, dropout=0.0,
                                        stochastic=stochastic, passthrough_keys=(keys.OBSERVATION,))
    critics = make_twin_q_critics(OBS, ACT, hidden_sizes=(16,))
    policy, critics = policy.to(device), [critic.to(device) for critic in critics]
    return make_learner(algorithm, policy, critics, spec(device), settings={"batch_size": BATCH},
                        cudagraphs=cudagraphs)


def train(algorithm: str, actor: str, device: str, cudagraphs: bool) -> tuple[list[dict], dict]:
    """The losses of each update and the loss module's final state."""
    learn = learner(algorithm, actor, device, cudagraphs)
    torch.manual_seed(2)  # the same target-smoothing noise / action samples for both
    losses = [{name: value.clone() for name, value in learn.update(batch).items()} for batch in batches(device, actor)]
    return losses, {name: value.clone() for name, value in learn.loss.state_dict().items()}


CASES = [("td3", "mlp"), ("td3", "transformer"), ("sac", "mlp"), ("sac", "transformer")]


@pytest.mark.parametrize(("algorithm", "actor"), CASES)
def test_graphed_steps_hold_the_eager_arithmetic_on_cpu(algorithm, actor):
    eager_losses, eager_state = train(algorithm, actor, "cpu", cudagraphs=False)
    graphed_losses, graphed_state = train(algorithm, actor, "cpu", cudagraphs=True)
    assert [sorted(step) for step in graphed_losses] == [sorted(step) for step in eager_losses]
    if algorithm == "td3":  # the actor steps every policy_delay-th update
        assert [("loss_actor" in step) for step in eager_losses] == [(i + 1) % 2 == 0 for i in range(UPDATES)]
    for eager, graphed in zip(eager_losses, graphed_losses, strict=True):
        for name in eager:
            assert torch.equal(eager[name], graphed[name]), name
    assert eager_state.keys() == graphed_state.keys()
    initial_state = learner(algorithm, actor, "cpu", False).loss.state_dict()
    changed = [name for name in eager_state if not torch.equal(eager_state[name], initial_state[name])]
    assert changed, "the updates changed no parameter"
    for name in eager_state:
        assert torch.equal(eager_state[name], graphed_state[name]), name


def test_a_resumed_learner_keeps_its_capturable_flag():
    trained = learner("td3", "mlp", "cpu", cudagraphs=False)
    for batch in batches("cpu", "mlp")[:2]:
        trained.update(batch)
    resumed = learner("td3", "mlp", "cpu", cudagraphs=False)
    resumed.critic_optimizer.defaults["capturable"] = True  # as a CUDA learner built with cudagraphs=True has it
    resumed.load_state_dict(trained.state_dict())
    assert all(group["capturable"] for group in resumed.critic_optimizer.param_groups)
    assert not any(group["capturable"] for group in resumed.actor_optimizer.param_groups)
    assert resumed.num_updates == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(("recipe", "device"), [("td3_accelerate", "cpu"), ("sac_accelerate", "auto")])
def test_cudagraphs_without_cuda_is_one_line_and_exit_2(capsys, tmp_path, recipe, device):
    found = "device=cpu" if device == "cpu" else "device=auto found no CUDA device"
    expect_one_line_exit_2(capsys, recipe, ["cudagraphs=true", f"device={device}", f"hydra.run.dir={tmp_path}"],
                           rf"cudagraphs=true captures the updates as CUDA graphs and needs a CUDA device, but this run "
                           rf"is on the CPU \({found}\): set cudagraphs=false, or run on a CUDA machine")


@needs_cuda
def test_cudagraphs_with_a_recurrent_accelerator_is_refused(tiny_config):
    with pytest.raises(ConfigError, match=r"cudagraphs=true with accelerator=lstm: .* set cudagraphs=false"):
        validate_config(tiny_config("cudagraphs=true", "device=cuda", "accelerator=lstm"))


@needs_cuda
@pytest.mark.parametrize(("algorithm", "actor"), CASES)
def test_replayed_graphs_follow_the_eager_updates_on_cuda(algorithm, actor):
    eager_losses, eager_state = train(algorithm, actor, "cuda", cudagraphs=False)
    graphed_losses, graphed_state = train(algorithm, actor, "cuda", cudagraphs=True)
    for eager, graphed in zip(eager_losses, graphed_losses, strict=True):
        for name in eager:
            torch.testing.assert_close(graphed[name], eager[name], rtol=1e-4, atol=1e-5)
    for name in eager_state:
        torch.testing.assert_close(graphed_state[name], eager_state[name], rtol=1e-4, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("recipe", ["td3", "sac"])
@pytest.mark.parametrize("compile", [False, True])
def test_the_recipe_runs_with_cuda_graphs(recipe, compile, tiny_config, tiny_sac_config, tmp_path):
    config = tiny_config if recipe == "td3" else tiny_sac_config
    summary = run_experiment(config("device=cuda", "cudagraphs=true", f"compile={str(compile).lower()}",
                                    "checkpoint.every=0"), tmp_path)
    assert summary["switch_step"] == 500 and summary["env_steps"] == 700
    assert isinstance(summary["stage1"]["transformer_return"], float)
    assert isinstance(summary["stage2"]["transformer_return"], float)

"""A TD3 learner built from TorchRL's ``TD3Loss``: one critic step per call, delayed actor step."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.data import TensorSpec
from torchrl.envs import ExplorationType
from torchrl.modules import AdditiveGaussianModule

from trl_accel.objectives.sequences import (
    FirstCriticTD3Loss,
    SequenceTD3Loss,
    make_actor_critic_loss,
)
from trl_accel.stages.actor_critic import (
    graphed,
    load_optimizer_state,
    needs_loop_over_critics,
    prepare_actor_critic,
    weighted_chunks,
)


@dataclass
class TD3Settings:
    """Table 1 of the paper, MuJoCo column."""

    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    exploration_noise: float = 0.1
    policy_delay: int = 2
    batch_size: int = 256  # read by the replay buffer, kept here with the rest of Table 1
    update_chunks: int = 1  # > 1: each update's batch in this many parts, gradients accumulated (less memory)


class ClampedGaussianNoise(AdditiveGaussianModule):
    """TorchRL's ``AdditiveGaussianModule`` with the action box read once, at construction: each step draws the
    same noise (``torch.normal`` on the same mean and std) and clamps to the same bounds, bit for bit, without
    the spec lookup and the box test (``spec.project``: a clamp only when a value is out of the box, which leaves
    in-box values unchanged, as a clamp does) that cost more than the arithmetic on every env step."""

    def __init__(self, spec: TensorSpec, **kwargs):
        super().__init__(spec=spec, **kwargs)
        box = spec.space
        device = kwargs.get("device")
        self.register_buffer("action_low", torch.as_tensor(box.low, device=device).clone(), persistent=False)
        self.register_buffer("action_high", torch.as_tensor(box.high, device=device).clone(), persistent=False)

    def _add_noise(self, action: torch.Tensor) -> torch.Tensor:
        noise = torch.normal(mean=self.mean.expand(action.shape), std=self.std.expand(action.shape))
        if noise.device != action.device:
            noise = noise.to(action.device)
        return torch.clamp(action + noise * self.sigma, self.action_low.expand_as(action),
                           self.action_high.expand_as(action))


def make_exploration_policy(actor: TensorDictModule, action_spec: TensorSpec, sigma: float) -> TensorDictSequential:
    """``actor`` followed by Gaussian noise of std ``sigma`` times the action half-range, clipped
    to the spec (:class:`ClampedGaussianNoise`). The noise is added only under ``ExplorationType.RANDOM``
    (the collector's default)."""
    half_range = (action_spec.space.high - action_spec.space.low) / 2
    noise = ClampedGaussianNoise(spec=action_spec, sigma_init=float(sigma), sigma_end=float(sigma),
                                 std=half_range.tolist(), device=half_range.device)
    return TensorDictSequential(actor, noise)


class TD3Learner:
    """``TD3Loss`` with its two Adam optimisers and soft target updates (Fujimoto et al., 2018).

    ``update(batch)`` reads what the loss needs from a replay-buffer sample (``observation``,
    ``action``, the actor's in-keys, ``("next", ...)`` with ``reward``, ``done``, ``terminated``;
    for recurrent learners a ``[B, T]`` batch of sequences with ``loss_mask``):
    one critic step each call; every ``policy_delay``-th call, one actor step and a soft update of
    all targets (actor and both critics). ``compile=True`` wraps the two loss computations in
    ``torch.compile``; ``cudagraphs=True`` captures the critic step and the actor step (loss, backward, optimiser
    step, and the actor step's target update) as two CUDA graphs (:func:`~trl_accel.stages.actor_critic.graphed`,
    capturable Adam), replayed on every update after a few eager ones: every batch must then have the first one's
    shapes (no recurrent learners, one chunk per update). Without CUDA the steps run eagerly.

    What TorchRL's ``TD3Loss`` computes, with actor μ_φ, critics Q_θ1 and Q_θ2, their targets
    μ_φ', Q_θ1', Q_θ2', a batch of transitions (s, a, r, s') and the settings γ = ``gamma``,
    σ = ``policy_noise``, c = ``noise_clip``, d = ``policy_delay``, τ = ``tau``:

    Target policy smoothing (noise in absolute action units, clipped to the action box [a_low, a_high])::

        ε ~ N(0, σ²),   ã' = clip(μ_φ'(s') + clip(ε, -c, c), a_low, a_high)

    Clipped double-Q target (only ``terminated`` stops the bootstrap: a truncated step bootstraps)::

        y = r + γ (1 - terminated) min_{i=1,2} Q_θi'(s', ã')

    Critic loss (both critics regress on the same target; y carries no gradient)::

        L(θ1, θ2) = mean_batch  Σ_{i=1,2} (Q_θi(s, a) - y)²

    Delayed deterministic actor loss (every d-th critic step; the first critic, its weights detached)::

        L(φ) = - mean_batch Q_θ1(s, μ_φ(s))

    Polyak update of every target, after each actor step::

        θi' ← τ θi + (1 - τ) θi',    φ' ← τ φ + (1 - τ) φ'

    On a sequence batch (recurrent critics), ``mean_batch`` runs over the steps where ``loss_mask`` is True
    (not the burn-in, not the padding), and the loss is :class:`~trl_accel.objectives.SequenceTD3Loss`: the
    target networks read the sequence extended by its last next step, once.
    """

    def __init__(self, actor: TensorDictModule, critics: list[TensorDictModule], action_spec: TensorSpec,
                 settings: TD3Settings, *, compile: bool = False, cudagraphs: bool = False):
        self.settings = settings
        sequences = needs_loop_over_critics(critics)
        self.loss = make_actor_critic_loss(SequenceTD3Loss if sequences else FirstCriticTD3Loss, actor, critics,
                                           action_spec=action_spec, policy_noise=settings.policy_noise,
                                           noise_clip=settings.noise_clip, loss_function="l2", deactivate_vmap=sequences)
        # The loss runs its *_loss methods under this exploration type: RANDOM is a gradient step's,
        # under which the transformer's dropout acts (TD3's actors are deterministic either way).
        self.loss.deterministic_sampling_mode = ExplorationType.RANDOM
        self.target_updater, self.critic_optimizer, self.actor_optimizer = prepare_actor_critic(
            self.loss, settings.gamma, settings.tau, settings.lr, capturable=cudagraphs)
        self.num_updates = 0
        self._value_loss = torch.compile(self.loss.value_loss) if compile else self.loss.value_loss
        self._actor_loss = torch.compile(self.loss.actor_loss) if compile else self.loss.actor_loss
        self._critic_step = graphed(self._step_critics, cudagraphs)
        self._actor_step = graphed(self._step_actor, cudagraphs)

    def update(self, batch: TensorDictBase) -> dict[str, float | torch.Tensor]:
        """One TD3 step on ``batch``; returns detached losses (``loss_qvalue``, and ``loss_actor`` on actor steps)."""
        out = dict(self._critic_step(batch).items())
        self.num_updates += 1
        if self.num_updates % self.settings.policy_delay == 0:
            out.update(self._actor_step(batch).items())
        return out

    def _step_critics(self, batch: TensorDictBase) -> TensorDictBase:
        """The critics' gradient step on ``batch``: ``{loss_qvalue}``, detached."""
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss_qvalue = self._accumulate(self._value_loss, weighted_chunks(batch, self.settings.update_chunks))
        self.critic_optimizer.step()
        return TensorDict(loss_qvalue=loss_qvalue)

    def _step_actor(self, batch: TensorDictBase) -> TensorDictBase:
        """The actor's gradient step on ``batch``, then the soft update of every target: ``{loss_actor}``, detached."""
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss_actor = self._accumulate(self._actor_loss, weighted_chunks(batch, self.settings.update_chunks))
        self.actor_optimizer.step()
        self.target_updater.step()
        return TensorDict(loss_actor=loss_actor)

    @staticmethod
    def _accumulate(loss_of, parts: list[tuple[TensorDictBase, float]]) -> torch.Tensor:
        """Backward of each part's loss times its weight (one part: the loss itself); the detached weighted sum."""
        if len(parts) == 1:
            loss, _ = loss_of(parts[0][0])
            loss.backward()
            return loss.detach()
        total = 0.0
        for part, weight in parts:
            loss, _ = loss_of(part)
            (loss * weight).backward()
            total = total + loss.detach() * weight
        return total

    def state_dict(self) -> dict:
        return {"loss": self.loss.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.loss.load_state_dict(state["loss"])
        load_optimizer_state(self.critic_optimizer, state["critic_optimizer"])
        load_optimizer_state(self.actor_optimizer, state["actor_optimizer"])
        self.num_updates = state["num_updates"]

"""Stage one's own parts (Algorithms 1 and 2): the trajectory buffer T and the BC learner."""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.modules import set_recurrent_mode

from trl_accel import keys
from trl_accel.objectives.bc import BehaviourCloningLoss, CriticValue
from trl_accel.stages.actor_critic import ForeachSoftUpdate, make_adam
from trl_accel.stages.windows import (
    TEACHER,
    WindowedTrajectoryBuffer,
    stored_instead_of_windows,
)

#: Where the pairs in T come from.
BC_DATA_SOURCES = ("training", "evaluation", "dagger")
#: What the transformer clones.
BC_TARGETS = ("accelerator", "executed")

PAIR_KEYS = (keys.OBSERVATION_WINDOW, keys.WINDOW_MASK, keys.OBSERVATION, keys.ACTION)


def make_trajectory_buffer(capacity: int, batch_size: int, device: torch.device | str = "cpu", *,
                           context_len: int | None = None, num_streams: int = 1, teacher_len: int | None = None,
                           teacher_sources: tuple[str, ...] = (), batch_streams: int | None = None,
                           rounds_kept: int = 1) -> ReplayBuffer | WindowedTrajectoryBuffer:
    """T: a small buffer of the transformer's training pairs (``capacity``: one BC round's steps), sampled without
    replacement so one pass over it is one epoch; emptied after every BC round, or, with ``rounds_kept`` > 1
    (windowed T only), holding the last ``rounds_kept`` rounds' steps.

    With ``context_len`` (what the recipes use) the pairs are stored as single steps and get their windows
    of ``context_len`` from T's own storage (:class:`~trl_accel.stages.windows.WindowedTrajectoryBuffer`;
    ``num_streams``: the envs that feed it, ``batch_streams`` of them in each batch); without it, the pairs carry their env-built windows
    (``observation_window``, ``window_mask``) and T is a plain ``ReplayBuffer``. ``teacher_len``: a recurrent
    teacher's history of that many steps of ``teacher_sources`` comes with each batch (windowed T only)."""
    if context_len is not None:
        return WindowedTrajectoryBuffer(capacity=capacity * rounds_kept, batch_size=batch_size, context_len=context_len,
                                        num_streams=num_streams, device=device, teacher_len=teacher_len,
                                        teacher_sources=teacher_sources, batch_streams=batch_streams,
                                        rounds_kept=rounds_kept)
    if rounds_kept != 1:
        raise ValueError("rounds_kept > 1 needs the windowed T (context_len).")
    return ReplayBuffer(storage=LazyTensorStorage(capacity, device=device),
                        sampler=SamplerWithoutReplacement(drop_last=False), batch_size=batch_size)


def bc_pairs(batch: TensorDictBase, extra_keys: tuple = (), *, windows_from_storage: bool = False) -> TensorDictBase:
    """The keys of a collector batch that go into T, flattened to one batch dimension (env-major). ``extra_keys``:
    what else the accelerator reads to label a pair (an LSTM's ``is_init`` and recurrent state).
    ``windows_from_storage``: the steps without their windows, for a T that builds them
    (:func:`~trl_accel.stages.windows.stored_instead_of_windows`), with their collector worker's index when they
    carry one."""
    wanted = list(dict.fromkeys([*PAIR_KEYS, *extra_keys]))
    if windows_from_storage:
        wanted = stored_instead_of_windows(wanted) + ([keys.WORKER] if keys.WORKER in batch else [])
    return batch.select(*wanted).reshape(-1)


def teacher_sequence(pairs: TensorDictBase) -> TensorDictBase:
    """``[B]`` pairs with a teacher history (``("teacher", key)`` [B, L, ...], ``("teacher", "window_mask")``
    [B, L]) -> a ``[B, L]`` sequence of those keys with ``is_init`` at each history's first real step (the padding
    before it is a separate segment, whose outputs are not used)."""
    history = pairs.get(TEACHER)
    real = history.get(keys.WINDOW_MASK)
    starts = real & ~torch.nn.functional.pad(real[:, :-1], (1, 0), value=False)
    starts[:, 0] = True
    sequence = history.exclude(keys.WINDOW_MASK).clone(False)
    sequence.batch_size = real.shape
    return sequence.set(keys.IS_INIT, starts.unsqueeze(-1))


def add_state_noise(pairs: TensorDictBase, sigma: float) -> TensorDictBase:
    """Gaussian noise of std ``sigma`` on the real positions of the window; ``observation`` is set to
    the noisy last entry so that an accelerator label is computed on the same noisy state."""
    window = pairs.get(keys.OBSERVATION_WINDOW)
    window_mask = pairs.get(keys.WINDOW_MASK).unsqueeze(-1)
    noisy = window + sigma * torch.randn_like(window) * window_mask
    return pairs.set(keys.OBSERVATION_WINDOW, noisy).set(keys.OBSERVATION, noisy[..., -1, :])


def reshuffled(batches: list[TensorDictBase], *, generator: torch.Generator | None = None) -> list[TensorDictBase]:
    """``batches`` of pairs ([B_i] each) joined and cut again, in a new random order, into batches of the first
    one's size: another epoch over the same pairs.

    >>> from tensordict import TensorDict
    >>> [part.batch_size[0] for part in reshuffled([TensorDict(x=torch.zeros(4), batch_size=[4])] * 2)]
    [4, 4]
    """
    pairs = torch.cat(batches)
    order = torch.randperm(pairs.batch_size[0], generator=generator).to(pairs.device)
    return list(pairs[order].split(batches[0].batch_size[0]))


#: Outputs of an actor that are not its action: the parameters of its action distribution.
DISTRIBUTION_PARAMETERS = (keys.PARAM, keys.LOC, keys.SCALE, keys.ACTION_LOG_PROB)


def _leaf(key: NestedKey) -> str:
    return key if isinstance(key, str) else key[-1]


def action_key_of(module: TensorDictModuleBase) -> NestedKey:
    """The key ``module`` writes its action to: ``action`` if it writes one, else its only out-key that
    is not a distribution parameter (``param``, ``loc``, ``scale``, ``*_log_prob``, at any nesting).
    Raises ``ValueError`` when that leaves no single key."""
    out_keys = list(module.out_keys)
    if keys.ACTION in out_keys:
        return keys.ACTION
    candidates = [key for key in out_keys
                  if _leaf(key) not in DISTRIBUTION_PARAMETERS and not _leaf(key).endswith("_log_prob")]
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(f"Cannot tell which of the teacher's out_keys {out_keys} is its action: "
                     "pass teacher_action_key=<the key it writes its action to>.")


class BehaviourCloner:
    """Trains the transformer on T by MSE (Algorithm 2), soft-updating its target each gradient step.

    ``target="accelerator"`` labels each pair with the accelerator's deterministic action (a SAC
    accelerator's mean action), recomputed at training time (the noise-free, current teacher; an LSTM
    accelerator from the recurrent state stored with the pair), read from ``teacher_action_key``
    (``None``: see :func:`action_key_of`); ``target="executed"`` clones the stored executed action
    (``action``, the noisy one for training data), as Algorithm 1 stores it.
    ``likelihood``, ``critic_value``, ``ascent_weight`` and ``student_dtype`` (the transformer's forward in
    bfloat16 under autocast, or float32) go to :class:`BehaviourCloningLoss`; the teacher's labels stay float32.
    """

    def __init__(self, transformer: TensorDictModule, accelerator: TensorDictModule, *, target: str = "accelerator",
                 lr: float = 3e-4, tau: float = 0.005, epochs: int = 1, state_noise: float = 0.0,
                 likelihood: bool = False, critic_value: CriticValue | None = None, ascent_weight: float = 0.0,
                 teacher_action_key: NestedKey | None = None, student_dtype: torch.dtype = torch.float32):
        if target not in BC_TARGETS:
            raise ValueError(f"bc_target must be one of {BC_TARGETS}, got '{target}'.")
        if teacher_action_key is None and target == "accelerator":
            teacher_action_key = action_key_of(accelerator)
        self.loss = BehaviourCloningLoss(transformer, likelihood=likelihood, critic_value=critic_value,
                                         ascent_weight=ascent_weight, student_dtype=student_dtype)
        self.target_updater = ForeachSoftUpdate(self.loss, tau=tau)
        self.optimizer = make_adam(list(self.loss.actor_network_params.values(True, True)), lr)
        self.accelerator = accelerator
        self.teacher_action_key = teacher_action_key
        self.target = target
        self.epochs = epochs
        self.state_noise = state_noise
        self.num_updates = 0

    def label(self, pairs: TensorDictBase) -> TensorDictBase:
        """``pairs`` with ``target_action`` [B, A] set (after the state noise, if any). A recurrent teacher whose
        history T provides (``("teacher", ...)``, see :class:`~trl_accel.stages.windows.WindowedTrajectoryBuffer`)
        labels each pair after running over that history from a zero state with its current weights: a state
        stored at collection came from older weights, and relabelling with it gives the current network a memory
        it would not have built."""
        if self.state_noise > 0:
            pairs = add_state_noise(pairs, self.state_noise)
        if self.target == "accelerator" and (TEACHER, keys.WINDOW_MASK) in pairs.keys(True):
            with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC), set_recurrent_mode(True):
                target = self.accelerator(teacher_sequence(pairs)).get(self.teacher_action_key)[:, -1]
        elif self.target == "accelerator":
            teacher_in = pairs.select(*self.accelerator.in_keys, strict=False)
            with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
                target = self.accelerator(teacher_in).get(self.teacher_action_key)
        else:
            target = pairs.get(keys.ACTION)
        return pairs.set(keys.TARGET_ACTION, target)

    def step(self, pairs: TensorDictBase) -> TensorDictBase:
        """One gradient step; returns the detached loss terms (``loss_bc``, ``loss_ascent`` when on, ``loss``)."""
        return self.fit(self.label(pairs))

    def fit(self, labelled: TensorDictBase) -> TensorDictBase:
        """One gradient step on pairs that hold their ``target_action`` already (see :meth:`label`)."""
        losses = self.loss(labelled)
        self.optimizer.zero_grad(set_to_none=True)
        losses.get("loss").backward()
        self.optimizer.step()
        self.target_updater.step()
        self.num_updates += 1
        return losses.detach()

    def labels_last_the_round(self) -> bool:
        """Whether a round's labels can be computed once and reused by its later epochs: the teacher's weights do
        not change within a round, so its deterministic labels do not either, unless state noise draws new inputs."""
        return self.target == "accelerator" and self.state_noise == 0

    def train_on(self, trajectory_buffer: ReplayBuffer | WindowedTrajectoryBuffer) -> dict[str, float]:
        """``epochs`` passes over T, then T is emptied. Returns the mean of each loss term over the round,
        and ``loss_bc_first_epoch`` / ``loss_bc_last_epoch`` (how far the round brought the fit).

        A recurrent teacher that rebuilds its memory over each pair's history (the costly label: a pass of the
        teacher over ``teacher_len`` steps per pair) labels each pair once per round, in the first epoch; the later
        epochs reshuffle those labelled pairs (without the teacher's history) into batches of the same size."""
        epochs, labelled_round = [], []
        for epoch in range(self.epochs):
            if epoch == 0 or not labelled_round:
                losses = []
                for pairs in trajectory_buffer:
                    labelled = self.label(pairs)
                    if self.labels_last_the_round() and TEACHER in labelled.keys():
                        labelled_round.append(labelled.exclude(TEACHER))
                    losses.append(self.fit(labelled))
            else:
                generator = getattr(trajectory_buffer, "generator", None)
                losses = [self.fit(pairs) for pairs in reshuffled(labelled_round, generator=generator)]
            if losses:
                epochs.append(torch.stack(losses))
        trajectory_buffer.empty()
        if not epochs:
            return {}
        means = torch.cat(epochs).apply(lambda value: value.mean(), batch_size=[])
        out = {key: value.item() for key, value in means.items() if key != "loss"}
        out["loss_bc_first_epoch"] = epochs[0]["loss_bc"].mean().item()
        out["loss_bc_last_epoch"] = epochs[-1]["loss_bc"].mean().item()
        return out

    def state_dict(self) -> dict:
        return {"loss": self.loss.state_dict(), "optimizer": self.optimizer.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_updates = state["num_updates"]

"""Every TensorDict key the package reads or writes, named once.

Modules take their keys as arguments (``in_keys``/``out_keys`` where TorchRL's own modules allow it);
these are the defaults. One concept, one name: the positions of a window that hold a real
observation of the current episode are the ``window_mask`` everywhere.
"""
from __future__ import annotations

# ---- env outputs
OBSERVATION = "observation"           #: [*B, D] float (the masked one on a POMDP task)
PIXELS = "pixels"                     #: [*B, 3, H, W] uint8, the current camera frame (rgb tasks)
STEP_COUNT = "step_count"             #: [*B, 1] int, 0 at an episode's first observation
IS_INIT = "is_init"                   #: [*B, 1] bool, True at an episode's first observation (InitTracker)
EPISODE_REWARD = "episode_reward"     #: [*B, 1] the running return (RewardSum)
SUCCESS = "success"                   #: [*B, 1] bool (ManiSkill tasks)
REWARD, DONE, TERMINATED, TRUNCATED = "reward", "done", "terminated", "truncated"

STATE = "state"                       #: [*B, S] the full state, for a privileged accelerator (partially observed tasks)
PREV_ACTION = "prev_action"           #: [*B, A] the action executed at the previous step, zero at an episode's start
PREV_REWARD = "prev_reward"           #: [*B, 1] the previous step's reward, zero at an episode's start

# ---- context windows (env transforms)
OBSERVATION_WINDOW = "observation_window"  #: [*B, K, D] the episode's last K observations, zero before its start
PIXELS_WINDOW = "pixels_window"            #: [*B, K, 3, H, W] the episode's last K frames
WINDOW_MASK = "window_mask"                #: [*B, K] bool, True where the window holds a real observation
TOKEN_WINDOW = "token_window"              #: [*B, K, D + F] observation and encoded frame per position
PREV_ACTION_WINDOW = "prev_action_window"  #: [*B, K, A] the previous actions of the window's steps (zero at a reset)
PREV_REWARD_WINDOW = "prev_reward_window"  #: [*B, K, 1] the previous rewards of the window's steps

# ---- policy and critic outputs
ACTION = "action"                          #: [*B, A] within the action spec
PARAM = "param"                            #: [*B, A] (deterministic) or [*B, 2A] (tanh-normal) unbounded head output
LOC, SCALE = "loc", "scale"                #: [*B, A] tanh-normal parameters
ACTION_LOG_PROB = "action_log_prob"        #: [*B] log-probability of the sampled action
STATE_ACTION_VALUE = "state_action_value"  #: [*B, 1] Q(s, a)
ACTOR_PIXEL_FEATURES = "actor_pixel_features"
CRITIC_PIXEL_FEATURES = "critic_pixel_features"
PIXEL_FEATURES = "pixel_features"

# ---- recurrent state (LSTM accelerator)
ACTOR_MEMORY = "actor_memory"              #: [*B, H] the actor's recurrent output
CRITIC_MEMORY = "critic_memory"            #: [*B, T, H] a critic's recurrent output
ACTOR_H, ACTOR_C = "actor_h", "actor_c"    #: [*B, 1, H] the actor's stored LSTM state
CRITIC_H, CRITIC_C = "critic_h", "critic_c"  #: [*B, 1, H] a critic's LSTM state (zero at each sequence's start)

# ---- learning
TARGET_ACTION = "target_action"            #: [*B, A] the action behaviour cloning matches
LOSS_MASK = "loss_mask"                    #: [B, T] bool, False on burn-in steps of a replayed sequence

#: What a collector writes that no learner reads.
COLLECTOR = "collector"
WORKER = "worker"                          #: [*B, 1] int64, the collector worker whose env made the step (collector.sync=false)

"""Help texts shared by several commands."""

RECIPES_HELP = """\
A recipe is a TOML file; its `kind` picks what trains:
  mtsac      multi-task SAC (architectures, balancing, curricula)
  mtppo      multi-task PPO
  sb3        a stable-baselines3 algorithm on the multi-task env
  continual  a task sequence with a continual-learning method (Continual World)
  maml-rl    MAML / FOMAML / ANIL / Meta-SGD on an RL task family (TRPO or PPO outer step)
  rl2        RL²: a recurrent policy adapting from its own earlier episodes of a task
  pearl      PEARL: off-policy SAC on a latent task inferred from a context encoder
  sine       few-shot sine regression meta-learning
Examples for every kind are in experiments/ (e.g. experiments/mtsac_nav2d.toml).

--set KEY=VALUE overrides a recipe key with a TOML value; dotted keys reach into
tables: --set total_steps=20000 --set sac.actor.hidden=[64,64] --set env.name='"MT10"'
"""
SET_HELP = (
    "override a recipe key with a TOML value, e.g. sac.actor.hidden=[64,64], or remove "
    "one with ~KEY, e.g. ~demos.bc (repeatable)"
)

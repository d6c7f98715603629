"""A reward plugin for the veRL tests, loaded through a recipe's ``plugins:`` list (as a user's
would be, inside veRL's worker). SmolLM2 never earns a milestone in a few tokens, so GRPO needs a
reward that differs between its rollouts: the mean length of the model's replies."""

from sandmle.core import hookimpl
from sandmle.core.interfaces import Reward
from sandmle.core.records import RewardBreakdown


class ReplyLengthReward(Reward):
    keys = ["reply_chars"]

    def score(self, trajectory, grade):
        texts = [t.text for t in trajectory.turns]
        value = sum(len(t) for t in texts) / len(texts) / 10.0 if texts else 0.0
        return RewardBreakdown(total=value, parts={"reply_chars": value})


class ConstantReward(Reward):
    """0.3 for every episode: a group whose episodes all ran must get advantage 0."""

    keys = ["constant"]

    def score(self, trajectory, grade):
        return RewardBreakdown(total=0.3, parts={"constant": 0.3})


@hookimpl
def register_rewards(register):
    register("reply-length", lambda config: ReplyLengthReward(), description="mean reply length / 10 (tests)")
    register("constant-0.3", lambda config: ConstantReward(), description="0.3 for every episode (tests)")

"""Group credit: scorers that compare a row with the other completions of its prompt (``group_rewards``)."""
